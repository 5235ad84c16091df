"""The Monte-Carlo tree search agent: determinism, validity, learning, no repeats, validation."""

from __future__ import annotations

import random

import numpy as np
import pytest

from agents import make_agent
from agents.runner import Budget, run_search
from nasenv.env import RecNASEnv
from nasenv.space import CORE, FULL, Architecture
from tests.conftest import TINY_SPACE, PlantedEvaluator
from tests.test_agents import planted_hits, tiny_env


def history(seed: int, budget: int = 25, **hyperparameters) -> list[tuple[str, float]]:
    agent = make_agent("mcts", seed=seed, **hyperparameters)
    result = run_search(agent, tiny_env(), Budget(budget), seed=seed)
    assert len(result.history) == budget and result.invalid_episodes == 0
    return [(t.arch, t.reward) for t in result.history]


@pytest.mark.parametrize("rollout", ["decision", "architecture"])
def test_search_is_reproducible_per_seed(rollout):
    first = history(1, rollout=rollout)
    assert first == history(1, rollout=rollout)
    assert first != history(2, rollout=rollout)


@pytest.mark.parametrize("space", [TINY_SPACE, CORE, FULL], ids=lambda s: s.name)
@pytest.mark.parametrize("rollout", ["decision", "architecture"])
def test_every_evaluated_architecture_is_in_the_space(space, rollout):
    env = RecNASEnv(evaluator=PlantedEvaluator(), space=space)
    result = run_search(make_agent("mcts", seed=5, rollout=rollout), env, Budget(120), seed=5)
    assert len(result.history) == 120 and result.invalid_episodes == 0
    assert all(Architecture.from_string(t.arch) in space for t in result.history)


def test_finds_a_planted_optimum_more_often_than_random_search():
    seeds = range(12)
    random_hits = planted_hits("random", seeds)  # chance: 11% per search of 80 evaluations
    assert planted_hits("mcts", seeds) >= max(2 * random_hits, random_hits + 3)


@pytest.mark.parametrize("exploration", [0.0, 0.177, 2.0])
@pytest.mark.parametrize("rollout", ["decision", "architecture"])
def test_no_architecture_is_evaluated_twice_until_the_space_is_exhausted(exploration, rollout):
    # Greedy selection (exploration 0) would walk to the best leaf again and again, and random
    # rollouts would repeat within a few draws of 58: only the exhaustion marks prevent both.
    size = len(TINY_SPACE)
    archs = [arch for arch, _ in history(3, size + 12, exploration=exploration, rollout=rollout)]
    assert len(set(archs[:size])) == size == len(set(archs))  # every one once, then repeats
    assert {Architecture.from_string(a) for a in archs} == set(TINY_SPACE)


def test_no_repeats_on_the_core_space_within_a_budget_smaller_than_it():
    env = RecNASEnv(evaluator=PlantedEvaluator(), space="core")
    result = run_search(make_agent("mcts", seed=0, exploration=0.0), env, Budget(400), seed=0)
    assert len({t.arch for t in result.history}) == 400


def test_honours_a_seconds_budget():
    env = RecNASEnv(evaluator=PlantedEvaluator(cost=2.0), space="core")
    result = run_search(make_agent("mcts"), env, Budget(evaluations=None, seconds=9.0))
    assert len(result.history) == 5  # the fifth starts at 8 s and ends at 10 s


def test_leaves_process_wide_random_state_alone():
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002 - the global one
    history(0)
    after = np.random.get_state()  # noqa: NPY002
    assert all(np.array_equal(a, b) for a, b in zip(np_state, after, strict=True))
    assert random.getstate() == py_state


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"exploration": -0.5}, r"exploration=-0\.5 is not allowed: give a finite number >= 0"),
        ({"exploration": float("nan")}, r"exploration=nan is not allowed: give a finite number"),
        ({"exploration": "1"}, r"exploration='1' is not allowed: give a finite number >= 0"),
        ({"rollout": "greedy"}, r"rollout='greedy' is not one of \['architecture', 'decision'\]"),
    ],
)
def test_invalid_hyperparameters_name_the_value_and_what_is_allowed(hyperparameters, message):
    with pytest.raises(ValueError, match=message):
        make_agent("mcts", **hyperparameters)
