"""Parallel workers (issue 18): ask and tell, the simulated event queue's order and budget
accounting, sequential agents, errors, and real worker processes on the live back end."""

from __future__ import annotations

import heapq
import itertools
from pathlib import Path

import numpy as np
import pytest

from agents.base import AskTellAgent
from agents.evolution import RegularizedEvolution
from agents.mcts import MCTS
from agents.multifidelity import ASHA
from agents.parallel import Finished, ParallelResult, run_parallel
from agents.random_search import RandomSearch
from agents.runner import Budget, run_search
from nasenv.env import RecNASEnv
from nasenv.evaluators import LiveEvaluator, TableEvaluator
from nasenv.results import TrainConfig
from nasenv.space import Architecture
from nasenv.table import BenchmarkTable
from nasenv.testing import TINY_SPACE

TABLE = BenchmarkTable.load(Path(__file__).resolve().parent / "data" / "tiny.npz")


def table_env() -> RecNASEnv:
    return RecNASEnv(evaluator=TableEvaluator(TABLE), space=TINY_SPACE, seed_policy="random")


def ask_tell_agents(seed: int) -> list[AskTellAgent]:
    agents: list[AskTellAgent] = [
        RandomSearch(seed=seed),
        RegularizedEvolution(seed=seed, population_size=5, sample_size=2),
        ASHA(seed=seed, min_epochs=1),
    ]
    try:
        import optuna  # noqa: F401

        from agents.tpe import TPE

        agents.append(TPE(seed=seed, n_startup_trials=5))
    except ImportError:
        pass
    return agents


@pytest.mark.parametrize("index", range(4))
def test_one_worker_is_the_sequential_search_exactly(index):
    agents = ask_tell_agents(3)
    if index >= len(agents):
        pytest.skip("TPE needs optuna")
    budget = Budget(evaluations=60)
    sequential = run_search(ask_tell_agents(3)[index], table_env(), budget, seed=3)
    parallel = run_parallel(agents[index], table_env(), budget, workers=1, seed=3)
    assert [f.trial for f in parallel.finished] == sequential.history
    assert parallel.best == sequential.best and not parallel.sequential
    starts = [f.start for f in parallel.finished]
    finishes = [f.finish for f in parallel.finished]
    assert starts[1:] == finishes[:-1]  # back to back on the one worker


def test_the_event_queue_is_list_scheduling_of_the_proposals():
    """Random search proposes without looking at results, so its schedule is plain list
    scheduling: each evaluation starts on the worker that frees first."""
    workers = 3
    result = run_parallel(RandomSearch(seed=1), table_env(), Budget(40), workers=workers, seed=1)
    started = sorted((f.trial.number, f) for f in result.finished)
    free = [(0.0, w) for w in range(workers)]
    expected = {}
    for number, f in started:
        at, worker = heapq.heappop(free)
        expected[number] = (worker, at, at + f.trial.cost_seconds)
        heapq.heappush(free, (at + f.trial.cost_seconds, worker))
    for f in result.finished:
        worker, start, finish = expected[f.trial.number]
        assert f.worker == worker
        assert f.start == pytest.approx(start) and f.finish == pytest.approx(finish)
    finishes = [f.finish for f in result.finished]
    assert finishes == sorted(finishes)  # told in the order they finish


def test_no_worker_runs_two_evaluations_at_once_and_the_seconds_budget_stops_starts():
    budget = Budget(evaluations=None, seconds=1.0)  # about 60 evaluations on 4 workers
    for agent in ask_tell_agents(0):
        result = run_parallel(agent, table_env(), budget, workers=4, seed=0)
        assert all(f.start < budget.seconds for f in result.finished)
        assert max(f.finish for f in result.finished) >= budget.seconds  # ran into it
        for worker in range(4):
            spans = sorted((f.start, f.finish) for f in result.finished if f.worker == worker)
            assert all(a[1] <= b[0] + 1e-9 for a, b in itertools.pairwise(spans))
        assert {f.worker for f in result.finished} == set(range(4))


def test_an_evaluations_budget_counts_starts_and_more_workers_finish_sooner():
    one = run_parallel(RandomSearch(seed=2), table_env(), Budget(48), workers=1, seed=2)
    four = run_parallel(RandomSearch(seed=2), table_env(), Budget(48), workers=4, seed=2)
    assert len(one.finished) == len(four.finished) == 48
    total = sum(f.trial.cost_seconds for f in one.finished)
    assert one.clock_seconds == pytest.approx(total)
    assert total / 4 <= four.clock_seconds < total / 2
    assert 0.8 < four.utilisation() <= 1.0


def test_asha_promotes_only_finished_results_and_is_charged_the_resumed_difference():
    result = run_parallel(ASHA(seed=0, min_epochs=1), table_env(), Budget(120), workers=4, seed=0)
    by_number = {f.trial.number: f for f in result.finished}
    resumed = [f for f in result.finished if f.trial.resumed_from is not None]
    assert resumed, "no promotion in 120 evaluations"
    for f in resumed:
        earlier = [
            g
            for g in by_number.values()
            if g.trial.arch == f.trial.arch and g.trial.number < f.trial.number
        ]
        assert any(g.finish <= f.start for g in earlier)  # its lower rung was in when asked
        stored = TABLE.result(f.trial.arch, f.trial.seed)
        low, high = f.trial.resumed_from, f.trial.fidelity or TABLE.budget()
        charged = stored.at_fidelity(*high).cost_seconds - stored.at_fidelity(*low).cost_seconds
        assert f.trial.cost_seconds == pytest.approx(charged)
        assert f.finish - f.start == pytest.approx(charged)


def test_the_incumbent_is_the_best_full_budget_trial_finished_by_then():
    result = run_parallel(ASHA(seed=0, min_epochs=1), table_env(), Budget(80), workers=4, seed=0)
    times = np.linspace(0, result.clock_seconds, 25)
    for t, incumbent in zip(times, result.incumbents(times), strict=True):
        done = [f.trial for f in result.finished if f.finish <= t and f.trial.full]
        if not done:
            assert incumbent is None
        else:
            assert incumbent == max(done, key=lambda trial: (trial.reward, -trial.number))
    assert result.incumbents([result.clock_seconds])[-1] == result.best
    with pytest.raises(ValueError, match="ascending"):
        result.incumbents([2.0, 1.0])


def test_an_agent_without_ask_and_tell_runs_one_evaluation_at_a_time():
    result = run_parallel(MCTS(seed=0), table_env(), Budget(30), workers=4, seed=0)
    assert result.sequential and len(result.finished) == 30
    assert all(f.worker == 0 for f in result.finished)
    spans = [(f.start, f.finish) for f in result.finished]
    assert all(a[1] == pytest.approx(b[0]) for a, b in itertools.pairwise(spans))
    assert result.utilisation() == pytest.approx(0.25)
    assert "one evaluation at a time" in result.summary()


def test_counted_agent_seconds_move_the_clock():
    excluded = run_parallel(RandomSearch(seed=0), table_env(), Budget(30), workers=2, seed=0)
    counted = run_parallel(
        RandomSearch(seed=0), table_env(), Budget(30), workers=2, seed=0, agent_seconds="counted"
    )
    assert counted.agent_seconds > 0 and counted.agent_seconds_counted
    assert counted.clock_seconds > excluded.clock_seconds
    assert [f.trial.arch for f in counted.finished] == [f.trial.arch for f in excluded.finished]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 0}, "workers must be an integer >= 1, got 0"),
        ({"workers": True}, "workers must be an integer >= 1, got True"),
        ({"workers": 2, "agent_seconds": "some"}, "unknown agent_seconds 'some'; allowed"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_parallel(RandomSearch(), table_env(), Budget(5), **kwargs)


def test_counted_seconds_need_ask_and_tell():
    with pytest.raises(ValueError, match="mcts proposes from within its own loop"):
        run_parallel(MCTS(), table_env(), Budget(5), workers=2, agent_seconds="counted")


def test_a_result_serialises_and_summarises():
    result = run_parallel(RandomSearch(seed=0), table_env(), Budget(10), workers=2, seed=0)
    data = result.to_dict()
    assert data["clock_seconds"] == result.clock_seconds and len(data["finished"]) == 10
    assert isinstance(result.finished[0], Finished) and isinstance(result, ParallelResult)
    assert "2 workers" in result.summary() and result.best is not None
    assert result.best.arch in result.summary()


FAST = TrainConfig(max_epochs=2, batch_size=64)


def test_live_workers_train_in_processes_and_record_as_a_sequential_search(tiny_dataset, tmp_path):
    cache = tmp_path / "cache.sqlite"
    env = RecNASEnv(evaluator=LiveEvaluator(tiny_dataset, FAST, cache=cache), space=TINY_SPACE)
    result = run_parallel(RandomSearch(seed=0), env, Budget(4), workers=2, seed=0)
    assert result.clock == "wall" and len(result.finished) == 4
    assert {f.trial.source for f in result.finished} == {"live"}
    first, second = sorted(result.finished, key=lambda f: f.start)[:2]
    assert second.start < first.finish and first.worker != second.worker  # two at once
    again = LiveEvaluator(tiny_dataset, FAST, cache=cache)  # what the workers stored
    for f in result.finished:
        stored = again.evaluate(Architecture.from_string(f.trial.arch), 0)
        assert f.trial.val_recall == stored.val_recall and f.trial.seed == 0
    with pytest.raises(ValueError, match="needs the live cache"):
        no_cache = RecNASEnv(evaluator=LiveEvaluator(tiny_dataset, FAST, cache=None))
        run_parallel(RandomSearch(), no_cache, Budget(2), workers=2)


def test_ray_tasks_train_and_the_driver_caches_and_records_them(tiny_dataset, tmp_path):
    pytest.importorskip("ray")
    cache = tmp_path / "cache.sqlite"
    env = RecNASEnv(evaluator=LiveEvaluator(tiny_dataset, FAST, cache=cache), space=TINY_SPACE)
    result = run_parallel(
        RandomSearch(seed=0), env, Budget(4), workers=2, seed=0, ray_address="local"
    )
    assert result.clock == "wall" and len(result.finished) == 4
    again = LiveEvaluator(tiny_dataset, FAST, cache=cache)  # what the driver stored
    for f in result.finished:
        stored = again.evaluate(Architecture.from_string(f.trial.arch), 0)
        assert f.trial.val_recall == stored.val_recall
    with pytest.raises(ValueError, match="needs the live back end"):
        run_parallel(RandomSearch(), table_env(), Budget(2), workers=2, ray_address="local")
