"""The package's shape, checked: no import runs in a circle, and no module reads another's private parts.

The layering itself (core imports no adapter, adapters neither each other nor the test kit, the test kit no
adapter) is import-linter's job: its contracts are in pyproject.toml and ``scripts/test.sh`` runs them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parents[2] / "src" / "resilientmq"

# Private names of other libraries that we read on purpose, each with the reason in the code beside it.
_ALLOWED_FOREIGN_PRIVATE: set[tuple[str, str]] = set()
# namedtuple's public API is spelt with a leading underscore.
_NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def test_no_import_runs_in_a_circle() -> None:
    graph = grimp.build_graph("resilientmq", exclude_type_checking_imports=True)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            if chain is not None:
                cycles.append(" -> ".join((importer, *chain)))
    assert cycles == []


def _private_reads(path: Path) -> list[tuple[int, str]]:
    """``x._name`` where ``x`` is not ``self``/``cls`` (dunders excepted)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
            continue
        if name in _NAMEDTUPLE_API:
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        found.append((node.lineno, f"{ast.unparse(owner)}.{name}"))
    return found


def test_no_module_reads_another_object_s_private_attributes() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for line, what in _private_reads(path):
            if (rel, what.rsplit(".", 1)[1]) not in _ALLOWED_FOREIGN_PRIVATE:
                offenders.append(f"{rel}:{line}: {what}")
    assert offenders == []


def test_facades_stay_thin() -> None:
    """A facade keeps only the drop-in API: no method body over 60 lines (the work is in the session)."""
    long = []
    for facade in sorted(SRC.glob("*/__init__.py")):
        package = facade.parent.name
        if package in ("core", "testing", "cli"):
            continue
        for node in ast.walk(ast.parse(facade.read_text(), str(facade))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    first = node.body[1] if len(node.body) > 1 else first  # the docstring does not count
                lines = (node.end_lineno or node.lineno) - first.lineno + 1
                if lines > 60:
                    long.append(f"{package}.{node.name}: {lines} lines")
    assert long == []
