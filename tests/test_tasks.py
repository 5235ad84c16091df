"""Task registry and the per-episode task set env, on the two committed sample tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents import make_agent
from agents.runner import Budget, run_search
from nasenv.data import DATASETS, HELD_OUT_TASKS, TRAINING_TASKS
from nasenv.env import RecNASEnv
from nasenv.evaluators import TableEvaluator
from nasenv.space import CORE
from nasenv.table import BenchmarkTable
from nasenv.tasks import TaskSetEnv
from nasenv.testing import TINY_SPACE

DATA = Path(__file__).resolve().parent / "data"
TABLES = {name: BenchmarkTable.load(DATA / f"{name}.npz") for name in ("tiny", "tiny-b")}


def task_env(**kwargs) -> TaskSetEnv:
    envs = {
        name: RecNASEnv(evaluator=TableEvaluator(table), space=TINY_SPACE, seed_policy="random")
        for name, table in TABLES.items()
    }
    return TaskSetEnv(envs, **kwargs)


def play(env: TaskSetEnv, seed: int, episodes: int) -> list[tuple[str, str, float]]:
    """(task, arch, reward) of ``episodes`` masked random episodes."""
    rng = np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    out = []
    for _ in range(episodes):
        while True:
            action = int(rng.choice(np.flatnonzero(env.action_masks())))
            _, reward, terminated, _, step_info = env.step(action)
            if terminated:
                break
        out.append((info["task"], step_info["arch"], float(reward)))
        _, info = env.reset()
    return out


def test_task_split_is_registered_and_disjoint():
    assert set(TRAINING_TASKS) | set(HELD_OUT_TASKS) <= set(DATASETS)
    assert not set(TRAINING_TASKS) & set(HELD_OUT_TASKS)
    assert len(TRAINING_TASKS) + len(HELD_OUT_TASKS) >= 4


def test_tasks_are_drawn_per_episode_from_the_seed():
    first, again = play(task_env(), 3, 30), play(task_env(), 3, 30)
    assert first == again
    assert {task for task, _, _ in first} == set(TABLES)
    other = play(task_env(), 4, 30)
    assert [t for t, _, _ in other] != [t for t, _, _ in first]


def test_reward_comes_from_the_episode_tasks_table():
    env = task_env()
    for task, arch, reward in play(env, 0, 20):
        scores = [TABLES[task].query(arch, seed).val_recall for seed in TABLES[task].seeds]
        assert reward in scores


def test_task_option_and_observation_one_hot():
    env = task_env()
    obs, info = env.reset(seed=0, options={"task": "tiny-b"})
    assert info["task"] == "tiny-b" and env.task == "tiny-b"
    assert obs.shape == env.observation_space.shape == (65 + 2,)
    np.testing.assert_array_equal(obs[-2:], [0.0, 1.0])
    assert env.observation_space.contains(obs)
    with pytest.raises(ValueError, match=r"unknown task 'Books-Mars'.*tiny-b"):
        env.reset(options={"task": "Books-Mars"})
    plain = task_env(task_in_obs=False)
    assert plain.reset(seed=0)[0].shape == (65,)


def test_costs_and_evaluations_add_up_over_tasks():
    env = task_env()
    episodes = play(env, 1, 12)
    assert env.evaluations == len(episodes)
    assert env.total_cost_seconds == pytest.approx(
        sum(e.total_cost_seconds for e in env.envs.values())
    )


def test_runner_and_agents_work_on_a_task_set():
    result = run_search(make_agent("evolution", seed=0), task_env(), Budget(25), seed=0)
    assert len(result.history) == 25
    assert result.best is not None and result.best.reward > 0


@pytest.mark.parametrize(
    ("tasks", "kwargs", "message"),
    [
        ([], {}, "tasks is empty"),
        ("Books-20core", {}, "not the string"),
        ({"a": None}, {"metric": "ndcg"}, "only to tasks given by name"),
    ],
)
def test_bad_task_sets_are_refused(tasks, kwargs, message):
    with pytest.raises(ValueError, match=message):
        TaskSetEnv(tasks, **kwargs)


def test_tasks_must_share_a_space():
    tiny = RecNASEnv(evaluator=TableEvaluator(TABLES["tiny"]), space=TINY_SPACE)
    core = RecNASEnv(backend="live", space=CORE, cache=None)
    with pytest.raises(ValueError, match="one search space"):
        TaskSetEnv({"tiny": tiny, "core": core})


def test_test_metrics_are_those_of_the_task_asked_for():
    env = task_env()
    play(env, 0, 3)
    arch = TABLES["tiny"].arch(0)
    for task in TABLES:
        assert env.test_metrics(arch, 0, task=task) == TABLES[task].test_metrics(arch, 0)
    assert env.test_metrics(arch, 0, task="tiny") != env.test_metrics(arch, 0, task="tiny-b")
    assert env.test_metrics(arch, 0) == env.envs[env.task].test_metrics(arch, 0)  # as before
    with pytest.raises(ValueError, match=r"unknown task 'Books-Mars'"):
        env.test_metrics(arch, 0, task="Books-Mars")


def test_a_search_on_a_task_set_records_each_trials_task_and_source():
    env = task_env()
    result = run_search(make_agent("random", seed=0), env, Budget(12), seed=0)
    assert {t.task for t in result.history} == set(TABLES)
    assert {t.source for t in result.history} == {"table"}
    assert set(result.best_by_task) == set(TABLES)
    for task, best in result.best_by_task.items():
        assert best.task == task
        assert best.reward == max(t.reward for t in result.history if t.task == task)
        assert result.test_metrics_by_task[task] == env.envs[task].test_metrics(best.arch)
