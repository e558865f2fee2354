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
_ALLOWED_FOREIGN_PRIVATE = {
    ("kafka/session.py", "_sender"),  # kafka-python's I/O thread: force_close() fails what it holds
}


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
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        found.append((node.lineno, f"{ast.unparse(owner)}.{name}"))
    return found


def test_no_module_reads_another_object_s_private_attributes() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("testing/"):
            continue  # the test kit reaches into the simulator's state on purpose; it is not the library
        for line, what in _private_reads(path):
            if (rel, what.rsplit(".", 1)[1]) not in _ALLOWED_FOREIGN_PRIVATE:
                offenders.append(f"{rel}:{line}: {what}")
    assert offenders == []
