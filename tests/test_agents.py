"""The shared runner and the non-neural agents: budgets, masks, determinism, and learning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import AGENTS, make_agent
from agents.base import mutate
from agents.runner import Budget, BudgetExhausted, SearchRunner, run_search
from nasenv.env import RecNASEnv
from nasenv.evaluators import TableEvaluator
from nasenv.space import CORE, FULL
from nasenv.table import BenchmarkTable
from nasenv.testing import TINY_SPACE
from tests.conftest import PlantedEvaluator

TABLE = BenchmarkTable.load(Path(__file__).resolve().parent / "data" / "tiny.npz")
SIMPLE_AGENTS = ("random", "evolution", "tpe", "qlearning")


def tiny_env(**kwargs) -> RecNASEnv:
    return RecNASEnv(evaluator=TableEvaluator(TABLE), space=TINY_SPACE, **kwargs)


def test_every_registered_agent_can_be_built():
    pytest.importorskip("sb3_contrib")
    for name in AGENTS:
        agent = make_agent(name, seed=3)
        assert agent.name == name and agent.seed == 3
        assert isinstance(agent.hyperparameters(), dict)
    with pytest.raises(ValueError, match="allowed"):
        make_agent("hill-climbing")


def test_budget_counts_repeats_and_refuses_more():
    runner = SearchRunner(tiny_env(), Budget(evaluations=3))
    runner.reset(seed=0)
    arch = TINY_SPACE[5]
    trials = [runner.evaluate(arch) for _ in range(3)]
    assert [t.number for t in trials] == [1, 2, 3]
    assert trials[2].total_seconds == pytest.approx(3 * trials[0].cost_seconds)
    assert runner.exhausted
    with pytest.raises(BudgetExhausted):
        runner.evaluate(arch)


def test_seconds_budget_lets_the_last_evaluation_finish():
    env = RecNASEnv(evaluator=PlantedEvaluator(cost=2.0), space="core")
    result = run_search(make_agent("random"), env, Budget(evaluations=None, seconds=5.0))
    assert len(result.history) == 3  # 2 + 2 < 5, the third starts below 5 s and ends at 6 s
    assert result.history[-1].total_seconds == 6.0


def test_invalid_actions_cost_no_evaluation():
    runner = SearchRunner(tiny_env(), Budget(evaluations=2))
    runner.reset(seed=0)
    _, reward, terminated, _, info = runner.step(5)  # "gat" is outside the tiny space
    assert terminated and reward == -1.0 and info["invalid_action"]
    assert runner.invalid_episodes == 1 and runner.history == []


def test_budget_validation():
    with pytest.raises(ValueError, match="evaluations, seconds or both"):
        Budget(evaluations=None)
    with pytest.raises(ValueError, match="evaluations must be >= 1"):
        Budget(evaluations=0)


@pytest.mark.parametrize("name", SIMPLE_AGENTS)
def test_agent_respects_budget_and_masks_and_is_deterministic(name):
    pytest.importorskip("optuna") if name == "tpe" else None

    def history(seed: int) -> list[tuple[str, float]]:
        result = run_search(make_agent(name, seed=seed), tiny_env(), Budget(25), seed=seed)
        assert len(result.history) == 25 and result.invalid_episodes == 0
        assert result.best.reward == max(t.reward for t in result.history)
        assert set(result.test_metrics) == {"test_recall", "test_ndcg"}
        return [(t.arch, t.reward) for t in result.history]

    first = history(1)
    assert first == history(1)
    assert first != history(2)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(FULL) - 1), st.integers(0, 2**32 - 1), st.sampled_from([CORE, FULL]))
def test_mutation_changes_one_decision_and_stays_valid(index, seed, space):
    parent = FULL[index] if space is FULL else CORE[index % len(CORE)]
    child = mutate(parent, space, np.random.default_rng(seed))
    assert child in space and child != parent


def planted_hits(agent: str, seeds: range, budget: int = 80) -> int:
    """Searches (one per seed) whose best architecture is the planted optimum of the core space
    (708 architectures; the score is the share of decisions that match the target)."""
    target = CORE[500]
    hits = 0
    for seed in seeds:
        env = RecNASEnv(evaluator=PlantedEvaluator(target), space="core")
        result = run_search(make_agent(agent, seed=seed), env, Budget(budget), seed)
        hits += result.best.arch == target.to_string()
    return hits


@pytest.mark.parametrize("name", ["evolution", "tpe", "qlearning"])
def test_learning_agents_find_a_planted_optimum_more_often_than_random_search(name):
    pytest.importorskip("optuna") if name == "tpe" else None
    seeds = range(12)
    random_hits = planted_hits("random", seeds)  # chance: 1 - (707/708)^80 = 11% per search
    assert planted_hits(name, seeds) >= max(2 * random_hits, random_hits + 3)


def test_the_portfolio_ranks_from_the_other_training_tasks_never_a_held_out_one(monkeypatch):
    import nasenv.table
    from agents.portfolio import portfolio
    from nasenv.data import HELD_OUT_TASKS, TRAINING_TASKS
    from nasenv.table import load_table

    loaded: list[str] = []

    def recording(name: str, directory=None, space="core", release=0):
        loaded.append(name)
        return load_table(name, directory, space, release)

    monkeypatch.setattr(nasenv.table, "load_table", recording)
    training = {name: load_table(name) for name in TRAINING_TASKS}
    held_out = HELD_OUT_TASKS[0]
    env = RecNASEnv(dataset=held_out)
    result = run_search(make_agent("portfolio", seed=0), env, Budget(evaluations=4), seed=0)
    assert loaded == list(TRAINING_TASKS)  # every training task, no held-out one
    assert [t.arch for t in result.history] == list(portfolio(training)[:4])

    searched = TRAINING_TASKS[1]
    loaded.clear()
    others = {name: table for name, table in training.items() if name != searched}
    assert make_agent("portfolio").order(searched) == portfolio(others)
    assert loaded == [name for name in TRAINING_TASKS if name != searched]
    assert portfolio(others) != portfolio(training)  # the searched task's table would count

    first, last = TRAINING_TASKS[-1], TRAINING_TASKS[0]
    only = make_agent("portfolio", tasks=f"{first}, {last}")  # explicit: exactly these
    assert only.order() == portfolio({first: training[first], last: training[last]})
    with pytest.raises(ValueError, match="unknown dataset 'Books-Mars'"):
        make_agent("portfolio", tasks="Books-Mars").order()


def test_tpe_leaves_optunas_process_wide_log_level_as_it_found_it(planted):
    optuna = pytest.importorskip("optuna")
    from agents.runner import Budget, run_search
    from nasenv.env import RecNASEnv

    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        run_search(make_agent("tpe", seed=0), RecNASEnv(evaluator=planted), Budget(5))
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(optuna.logging.INFO)
