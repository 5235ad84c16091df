"""SMAC3's multi-fidelity facade as an ask-and-tell agent (issue 18): the ConfigSpace encoding
of the search space, budgets and resumption on the sample table, parallel workers, and the
process state it leaves."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("smac")

from ConfigSpace import Configuration

from agents.parallel import run_parallel
from agents.runner import Budget, run_search
from agents.smac import SMACHyperband, configuration_space, decisions
from nasenv.env import RecNASEnv
from nasenv.evaluators import TableEvaluator
from nasenv.space import CORE, CORE_V1
from nasenv.table import BenchmarkTable
from nasenv.testing import TINY_SPACE

TABLE = BenchmarkTable.load(Path(__file__).resolve().parent / "data" / "tiny.npz")


def table_env() -> RecNASEnv:
    return RecNASEnv(evaluator=TableEvaluator(TABLE), space=TINY_SPACE, seed_policy="random")


@pytest.mark.parametrize("space", [CORE, TINY_SPACE, CORE_V1], ids=["core", "tiny", "core-v1"])
def test_every_architecture_is_one_configuration_and_back(space):
    cs = configuration_space(space)
    names = set(cs.keys())
    seen = set()
    for arch in space:
        values = {
            slot.name: str(value)
            for slot, value in zip(space.slots, space.decisions(arch), strict=True)
            if slot.name in names and value != "none"
        }
        active = _active(cs, values)
        config = Configuration(cs, values=active)  # raises unless the conditions hold
        assert decisions(config, space) == list(space.decisions(arch))
        seen.add(tuple(sorted(active.items())))
    assert len(seen) == len(space)  # no two architectures share a configuration


def _active(cs, values):
    """``values`` less those the configuration space's conditions switch off."""
    out = dict(values)
    changed = True
    while changed:
        changed = False
        for condition in cs.conditions:
            child, parent = condition.child.name, condition.parent.name
            if child in out and (parent not in out or not condition.satisfied_by_value(out)):
                del out[child]
                changed = True
    return out


def test_a_configuration_of_another_space_is_refused_by_name():
    with pytest.raises(ValueError, match="layer1='gat'"):
        decisions({"layer1": "gat"}, CORE)


def test_smac_asks_for_rungs_resumes_promotions_and_is_deterministic():
    budget = Budget(evaluations=40)
    first = run_search(SMACHyperband(seed=0, min_epochs=1), table_env(), budget, seed=0)
    again = run_search(SMACHyperband(seed=0, min_epochs=1), table_env(), budget, seed=0)
    assert [t.arch for t in first.history] == [t.arch for t in again.history]
    assert {t.fidelity for t in first.history} == {(3, 3), None}  # SMAC's 8/3 and 8 epochs
    assert any(t.resumed_from == (3, 3) for t in first.history)
    assert first.best is not None and first.best.full


def test_smac_with_parallel_workers_and_the_state_it_leaves():
    root = logging.getLogger()
    before = (root.level, list(root.handlers), logging.getLogger("smac").level)
    python, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    result = run_parallel(
        SMACHyperband(seed=1, min_epochs=1), table_env(), Budget(30), workers=4, seed=1
    )
    assert len(result.finished) == 30 and not result.sequential
    assert {f.worker for f in result.finished} == set(range(4))
    assert (root.level, list(root.handlers), logging.getLogger("smac").level) == before
    assert random.getstate() == python
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])  # noqa: NPY002
