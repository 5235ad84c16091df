"""The README's Python examples run as written (against the shipped data and table)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
NEEDS_TASK_TABLES = "needs a table per task"  # runs once every training task's table ships


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index):
    pytest.importorskip("optuna")  # the agents example uses TPE (the rl extra)
    code = BLOCKS[index]
    if NEEDS_TASK_TABLES in code:
        from nasenv.data import TRAINING_TASKS
        from nasenv.table import load_table

        try:
            [load_table(task) for task in TRAINING_TASKS]
        except FileNotFoundError as missing:  # tables still being built: the error says so
            assert "no table" in str(missing) and "build_table.py" in str(missing)
            return
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "readme"})
