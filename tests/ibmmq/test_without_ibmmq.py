"""The test kit works with only resilientmq installed: every MQ constant the adapter, the simulator and this
suite use is in the simulator's own tables, and the whole MQ suite passes where ``import ibmmq`` fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from resilientmq.testing.mqsim.constants import own_constants

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    ROOT / "src" / "resilientmq" / "ibmmq",
    ROOT / "src" / "resilientmq" / "testing" / "mqsim",
    ROOT / "tests" / "ibmmq",
    ROOT / "tests" / "contract" / "test_contract_ibmmq.py",
    ROOT / "benchmarks" / "bench_ibmmq.py",
]
# MQ-looking names that are no IBM constants: ours, a CMQSTRC table, and a command that does not exist.
OURS = {"MQI_VERBS", "MQLONG_TYPE", "MQRC_DICT", "MQCMD_NO_SUCH_COMMAND"}
_NAME = re.compile(r"(?:\.|[\"'])(MQ[A-Z0-9]*_[A-Z0-9_]+)\b")
SKIP_ENV = "RESILIENTMQ_TEST_WITHOUT_IBMMQ"  # set inside the run below, so it does not run itself again

NO_IBMMQ = '''
import sys


class NoIbmmq:
    """As on a machine where only resilientmq is installed: ibmmq, pymqi and IBM's C layer are not there."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ibmmq", "pymqi", "ibmmqc"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked for this run)", name=name)
        return None


sys.meta_path.insert(0, NoIbmmq())
'''


def _used_names() -> set[str]:
    names: set[str] = set()
    for source in SOURCES:
        for path in [source] if source.is_file() else sorted(source.rglob("*.py")):
            names |= set(_NAME.findall(path.read_text()))
    return names - OURS


def test_every_constant_used_is_in_the_simulators_own_tables() -> None:
    own = set(own_constants("CMQC")) | set(own_constants("CMQXC")) | set(own_constants("CMQCFC"))
    missing = sorted(_used_names() - own)
    assert missing == [], f"add to mqsim/constants.py (IBM's values): {missing}"


@pytest.mark.skipif(bool(os.environ.get(SKIP_ENV)), reason="already inside the run without ibmmq")
def test_the_mq_suite_passes_where_ibmmq_cannot_be_imported(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(NO_IBMMQ)  # every Python process of the run, children too
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESILIENTMQ_MQ_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    env[SKIP_ENV] = "1"
    check = subprocess.run(
        [sys.executable, "-c", "import ibmmq"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert check.returncode != 0 and "blocked for this run" in check.stderr  # the hook is in place
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/ibmmq"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    summary = done.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert passed >= 100 and "failed" not in summary and "error" not in summary, summary
