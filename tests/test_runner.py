"""The search runner's final report: provenance of every number (measured or predicted) and a best
per task on task sets (issue 24)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import pytest

import nasenv  # noqa: F401 - registers the ids
from agents import make_agent
from agents.runner import Budget, SearchRunner, final_test_metrics, run_search
from nasenv.env import RecNASEnv
from nasenv.evaluators import (
    FRESH_SEED_START,
    Evaluation,
    LiveEvaluator,
    SurrogateEvaluator,
    fresh_seeds,
)
from nasenv.results import TrainConfig
from nasenv.space import CORE, SLOTS, Architecture
from nasenv.tasks import TaskSetEnv
from tests.conftest import PlantedEvaluator

SURROGATE_ID = "RecNAS-Books-Surrogate-v0"


@dataclass
class Scripted:
    """An agent that plays fixed ``(task, architecture)`` episodes (``task=None``: the env's
    draw), so a test decides which task each evaluation is on."""

    plays: Sequence[tuple[str | None, Architecture]]
    name: str = "scripted"

    def hyperparameters(self) -> dict[str, Any]:
        return {}

    def search(self, runner: SearchRunner) -> None:
        for task, arch in self.plays:
            runner.reset(options=None if task is None else {"task": task})
            values, terminated = arch.decisions(), False
            while not terminated:
                slot = len(runner.env.unwrapped.decisions)
                _, _, terminated, _, _ = runner.step(SLOTS[slot].choices.index(values[slot]))


class TaskEvaluator(PlantedEvaluator):
    """A planted evaluator whose scores are scaled and whose test metrics carry a marker, so that
    rewards and test metrics of two tasks never coincide."""

    def __init__(self, target: Architecture, scale: float, marker: float) -> None:
        super().__init__(target)
        self.scale, self.marker = scale, marker

    def evaluate(self, arch: Architecture, seed: int) -> Evaluation:
        planted = super().evaluate(arch, seed)
        return Evaluation(
            planted.arch,
            seed,
            "ok",
            "",
            planted.val_recall * self.scale,
            planted.val_ndcg * self.scale,
            planted.cost_seconds,
            planted.n_params,
            source="table",
        )

    def test_metrics(self, arch: Architecture, seed: int) -> dict[str, float]:
        hits = sum(a == b for a, b in zip(arch.decisions(), self.target.decisions(), strict=True))
        return {"test_recall": self.marker + hits / 100, "test_ndcg": self.marker}


A_TARGET, B_TARGET = CORE[10], CORE[500]


def two_tasks() -> TaskSetEnv:
    return TaskSetEnv(
        {
            "A": RecNASEnv(evaluator=TaskEvaluator(A_TARGET, 1.0, 0.5), space="core"),
            "B": RecNASEnv(evaluator=TaskEvaluator(B_TARGET, 0.5, 0.25), space="core"),
        }
    )


# Evaluation 1 (A's target, reward 0.1) is the best of all and of A; evaluation 2 (B's target,
# 0.05) the best of B; the search ends on task B.
PLAYS = [("A", A_TARGET), ("B", B_TARGET), ("B", CORE[0]), ("A", CORE[0]), ("B", CORE[1])]


def test_a_task_set_search_keeps_a_best_per_task_with_its_own_tasks_test_metrics():
    env = two_tasks()
    result = run_search(Scripted(PLAYS), env, Budget(evaluations=len(PLAYS)))
    assert [t.task for t in result.history] == ["A", "B", "B", "A", "B"]
    assert env.task == "B"  # the current task is not the best's
    assert {task: t.number for task, t in result.best_by_task.items()} == {"A": 1, "B": 2}
    assert result.best is not None and result.best.number == 1 and result.best.task == "A"
    for task, best in result.best_by_task.items():
        assert result.test_metrics_by_task[task] == env.envs[task].test_metrics(best.arch)
    # the best's test metrics come from its own task's env, not the current one's
    assert result.test_metrics == env.envs["A"].test_metrics(A_TARGET.to_string())
    assert result.test_metrics != env.envs["B"].test_metrics(A_TARGET.to_string())
    assert result.task_datasets == {"A": "planted", "B": "planted"} and result.dataset is None
    record = json.loads(json.dumps(result.to_dict()))
    assert record["best_by_task"]["B"]["number"] == 2
    assert record["test_metrics_by_task"]["A"] == result.test_metrics


def test_the_runner_answers_the_best_of_one_task():
    runner = SearchRunner(two_tasks(), Budget(evaluations=len(PLAYS)))
    runner.reset(seed=0)
    Scripted(PLAYS).search(runner)
    assert runner.best().number == 1  # over every trial, as before
    assert runner.best("A").number == 1 and runner.best(task="B").number == 2
    assert runner.tasks() == ["A", "B"]
    assert list(runner.best_by_task()) == ["A", "B"]
    with pytest.raises(RuntimeError, match="on task 'C'"):
        runner.best("C")


def test_a_task_set_summary_has_a_line_per_task():
    result = run_search(Scripted(PLAYS), two_tasks(), Budget(evaluations=len(PLAYS)))
    lines = result.summary().splitlines()
    assert "5 evaluations on 2 tasks" in lines[0]
    assert lines[1].startswith("best per task")
    assert len(lines) == 4
    for line, (task, best) in zip(lines[2:], result.best_by_task.items(), strict=True):
        metrics = result.test_metrics_by_task[task]
        assert line.startswith(f"  {task}: evaluation {best.number} ") and best.arch in line
        assert f"test Recall@20 {metrics['test_recall']:.4f}" in line
    assert "predicted" not in result.summary()


def test_a_single_task_search_records_no_task_and_reports_as_before(planted):
    env = RecNASEnv(evaluator=planted, space="core")
    result = run_search(make_agent("random", seed=0), env, Budget(evaluations=10))
    assert all(t.task is None and t.source == "live" for t in result.history)
    assert result.best_by_task == {} and result.test_metrics_by_task == {}
    assert set(result.test_metrics) == {"test_recall", "test_ndcg"}
    assert result.source == "live" and not result.predicted and result.dataset == "planted"
    lines = result.summary().splitlines()
    assert lines[1].startswith("best (evaluation") and len(lines) == 4
    assert lines[2].startswith("  validation Recall@20") and lines[3].startswith("  test Recall@20")


def test_a_table_search_says_its_numbers_come_from_the_table():
    result = run_search(make_agent("random", seed=0), gym.make("RecNAS-Books-v0"), Budget(10))
    assert {t.source for t in result.history} == {"table"} and result.source == "table"
    assert not result.predicted and result.to_dict()["predicted"] is False
    assert set(result.test_metrics) == {"test_recall", "test_ndcg"}
    assert "predicted" not in result.summary() and "recnas evaluate" not in result.summary()


def test_a_surrogate_search_labels_its_numbers_predicted_and_says_how_to_measure():
    result = run_search(make_agent("random", seed=0), gym.make(SURROGATE_ID), Budget(20))
    assert {t.source for t in result.history} == {"surrogate"}
    assert all(t.predicted for t in result.history)
    assert result.source == "surrogate" and result.predicted and result.fresh_seeds == []
    assert set(result.test_metrics) == {"predicted_test_recall", "predicted_test_ndcg"}
    record = result.to_dict()
    assert record["predicted"] is True and record["history"][0]["source"] == "surrogate"
    best = result.best
    assert best is not None
    summary = result.summary()
    assert "h of predicted training" in summary
    assert f"  predicted validation Recall@20 {best.val_recall:.4f}" in summary
    predicted = result.test_metrics["predicted_test_recall"]
    assert f"  predicted test Recall@20 {predicted:.4f}" in summary
    assert "\n  test Recall@20" not in summary  # a prediction is never printed as a measurement
    assert (
        f'recnas evaluate "{best.arch}" --seed {FRESH_SEED_START} --max-epochs 30 --patience 5'
        in summary
    )
    assert "--fresh-seeds N" in summary


@dataclass
class FakeLive:
    """Stands for the live back end: records what it is asked to train."""

    calls: list[tuple[str, int]] = field(default_factory=list)

    @property
    def dataset_name(self) -> str:
        return "Books-20core"

    def evaluate(self, arch: Architecture, seed: int) -> Evaluation:
        raise AssertionError("fresh seeds need test metrics only")

    def test_metrics(self, arch: Architecture, seed: int) -> dict[str, float]:
        self.calls.append((arch.to_string(), seed))
        step = seed - FRESH_SEED_START
        return {"test_recall": 0.08 + 0.02 * step, "test_ndcg": 0.04 + 0.02 * step}


def test_fresh_seeds_on_the_surrogate_train_the_best_for_real(monkeypatch):
    fake = FakeLive()
    monkeypatch.setattr(SurrogateEvaluator, "live_evaluator", lambda self, *a, **k: fake)
    env = gym.make(SURROGATE_ID)
    seeds = fresh_seeds(2)
    result = run_search(make_agent("random", seed=0), env, Budget(20), fresh_seeds=seeds)
    best = result.best
    assert best is not None
    assert fake.calls == [(best.arch, 1000), (best.arch, 1001)]
    assert result.fresh_seeds == [1000, 1001]
    assert result.test_metrics["test_recall"] == pytest.approx(0.09)
    assert result.test_metrics["predicted_test_recall"] == pytest.approx(
        env.unwrapped.test_metrics(best.arch)["predicted_test_recall"]
    )
    summary = result.summary()
    assert "measured test Recall@20 0.0900, NDCG@20 0.0500 (seeds 1000-1001" in summary
    assert "predicted test Recall@20" in summary and "recnas evaluate" not in summary


def test_fresh_seeds_on_the_surrogate_go_through_a_real_live_evaluator(monkeypatch, tiny_dataset):
    """The whole path on tiny data: real trainings, fast."""
    live = LiveEvaluator(tiny_dataset, TrainConfig(max_epochs=1, batch_size=64), cache=None)
    monkeypatch.setattr(SurrogateEvaluator, "live_evaluator", lambda self, *a, **k: live)
    runner = SearchRunner(gym.make(SURROGATE_ID), Budget(1))
    arch = "layers=lgconv,combine=mean,dim=16,items=id,loss=bpr,lr=0.02,reg=0.0001"
    runner.reset(seed=0)
    runner.evaluate(Architecture.from_string(arch))
    metrics = final_test_metrics(runner, arch, fresh_seeds(1))
    expected = live.test_metrics(Architecture.from_string(arch), FRESH_SEED_START)
    assert metrics["test_recall"] == expected["test_recall"]
    assert set(metrics) == {
        "test_recall",
        "test_ndcg",
        "predicted_test_recall",
        "predicted_test_ndcg",
    }


def test_fresh_seeds_start_at_one_named_constant():
    assert FRESH_SEED_START == 1000
    assert fresh_seeds(3) == (1000, 1001, 1002) and fresh_seeds(0) == ()
    with pytest.raises(ValueError, match=">= 0"):
        fresh_seeds(-1)
