"""RecNAS-Books-MO-v0, Pareto fronts, hypervolume and IGD, the multi-objective agents and the
MO-Gymnasium workflows (skipped without mo-gymnasium, the ``mo`` extra)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import nasenv
from agents.multiobjective import (
    MO_AGENTS,
    MOSearchRunner,
    crowding_distances,
    non_dominated_ranks,
    run_mo_search,
)
from agents.runner import Budget
from nasenv.evaluators import TableEvaluator
from nasenv.multiobjective import (
    MO_ENV_ID,
    OBJECTIVE_NAMES,
    OBJECTIVES,
    REWARD_HIGH,
    REWARD_LOW,
    RecNASMOEnv,
    hypervolume,
    igd,
    non_dominated,
    objective_vector,
    pareto_front,
    reference_point,
    table_objectives,
)
from nasenv.space import SLOTS
from nasenv.testing import TINY_SPACE, load_sample_table

SAMPLE = Path(__file__).parent / "data" / "tiny.npz"


@pytest.fixture(scope="module")
def table():
    return load_sample_table(SAMPLE)


def make_env(table, seed_policy="random"):
    return RecNASMOEnv(evaluator=TableEvaluator(table), space=TINY_SPACE, seed_policy=seed_policy)


def episode(env, rng, seed=None):
    """A masked random episode: the rewards of its steps and the last info."""
    _, info = env.reset(seed=seed)
    rewards = []
    while True:
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        if terminated or truncated:
            return rewards, info


# -- the objectives and the env --------------------------------------------------------------------


def test_objectives_are_defined_once_with_bounded_transforms():
    assert OBJECTIVE_NAMES == ("quality", "train_seconds", "inference_ms", "n_params")
    assert np.array_equal(REWARD_LOW, [0, -6, -6, -12])
    assert np.array_equal(REWARD_HIGH, [1, 3, 3, 0])
    raw = {"quality": 0.1, "train_seconds": 10.0, "inference_ms": 100.0, "n_params": 1e5}
    assert np.allclose(objective_vector(raw), [0.1, -1, -2, -5])
    worst = {"quality": math.nan, "train_seconds": math.nan, "inference_ms": 1e9, "n_params": 0}
    assert np.array_equal(objective_vector(worst), [0, -6, -6, 0])  # n_params 0 clips to 1
    assert [o.bounds for o in OBJECTIVES] == list(zip(REWARD_LOW, REWARD_HIGH, strict=True))


def test_rewards_are_zero_vectors_then_the_documented_transform_of_the_table(table):
    env = make_env(table)
    space = env.reward_space
    assert isinstance(space, gym.spaces.Box) and space.shape == (4,) and space.dtype == np.float32
    assert env.reward_dim == 4
    rng = np.random.default_rng(0)
    for i in range(60):
        rewards, info = episode(env, rng, seed=i if i < 3 else None)
        for reward in rewards[:-1]:
            assert reward.dtype == np.float32 and not reward.any()
        last = rewards[-1]
        assert last.dtype == np.float32 and last.shape == (4,) and space.contains(last)
        record = table.query(info["arch"], info["seed"])
        raw = {
            "quality": record.val_recall,
            "train_seconds": record.cost_seconds,
            "inference_ms": record.inference_ms,
            "n_params": record.n_params,
        }
        assert info["objectives"] == pytest.approx(raw)
        expected = np.array(
            [
                record.val_recall,
                -math.log10(record.cost_seconds),
                -math.log10(record.inference_ms),
                -math.log10(record.n_params),
            ],
            np.float32,
        )
        np.testing.assert_array_equal(last, expected)
        assert info["cost_seconds"] == record.cost_seconds and "action_mask" in info


def test_the_decisions_masks_and_infos_are_those_of_v0(table):
    from nasenv.env import RecNASEnv

    mo = make_env(table)
    v0 = RecNASEnv(evaluator=TableEvaluator(table), space=TINY_SPACE, seed_policy="random")
    rng = np.random.default_rng(1)
    for seed in range(5):
        (o1, i1), (o2, i2) = mo.reset(seed=seed), v0.reset(seed=seed)
        while True:
            assert np.array_equal(o1, o2) and np.array_equal(i1["action_mask"], i2["action_mask"])
            action = int(rng.choice(np.flatnonzero(i1["action_mask"])))
            o1, r1, t1, _, i1 = mo.step(action)
            o2, r2, t2, _, i2 = v0.step(action)
            assert t1 == t2
            if t1:
                assert float(r1[0]) == pytest.approx(r2, abs=1e-7)
                extra = set(i1) - set(i2)
                assert extra == {"objectives", "inference_ms"}
                assert all(np.array_equal(i1[k], i2[k]) for k in i2)
                break


def test_mean_policy_invalid_actions_and_refused_arguments(table):
    env = make_env(table, seed_policy="mean")
    _, info = episode(env, np.random.default_rng(2), seed=0)
    mean = table.query(info["arch"], "mean")
    assert info["objectives"]["train_seconds"] == pytest.approx(mean.cost_seconds)
    assert info["cost_seconds"] == pytest.approx(3 * mean.cost_seconds)
    assert info["objectives"]["inference_ms"] == pytest.approx(mean.inference_ms)
    env.reset(seed=0)
    invalid = int(np.flatnonzero(~env.action_masks())[0])
    _, reward, terminated, _, info = env.step(invalid)
    assert terminated and info["invalid_action"]
    assert np.array_equal(reward, REWARD_LOW) and env.reward_space.contains(reward)
    with pytest.raises(TypeError, match="invalid_reward"):
        RecNASMOEnv(evaluator=TableEvaluator(table), space=TINY_SPACE, invalid_reward=-1.0)


def test_the_registered_id_is_the_protocol_env_and_stays_out_of_the_scalar_ids():
    spec = gym.spec(MO_ENV_ID)
    assert spec.max_episode_steps == len(SLOTS) and spec.disable_env_checker
    assert MO_ENV_ID not in nasenv.ENV_IDS
    env = gym.make(MO_ENV_ID)
    assert isinstance(env.unwrapped, RecNASMOEnv) and env.unwrapped.seed_policy == "random"
    rewards, _ = episode(env, np.random.default_rng(0), seed=0)
    assert env.unwrapped.reward_space.contains(rewards[-1]) and len(rewards) == len(SLOTS)


def test_every_architecture_of_the_shipped_table_lies_in_reward_space():
    from nasenv.table import load_table

    points = table_objectives(load_table())
    assert (points >= REWARD_LOW).all() and (points <= REWARD_HIGH).all()


# -- fronts and indicators -------------------------------------------------------------------------


def brute_front(points):
    n = len(points)
    return [
        i
        for i in range(n)
        if not any(
            (points[j] >= points[i]).all() and (points[j] > points[i]).any() for j in range(n)
        )
    ]


def test_pareto_front_of_the_sample_table_is_complete_and_non_dominated(table):
    front = pareto_front(table)
    points = table_objectives(table)
    assert list(front.rows) == brute_front(points)
    assert np.array_equal(front.points, points[front.rows])
    for p in front.points:  # nothing dominates a front point
        assert not ((points >= p).all(axis=1) & (points > p).any(axis=1)).any()


def test_non_dominated_keeps_ties_and_drops_dominated():
    points = np.array([[1, 1], [1, 1], [0, 2], [0, 1], [0.5, 0.5]], float)
    assert list(non_dominated(points)) == [True, True, True, False, False]
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.integers(0, 4, size=(30, 3)).astype(float)  # many ties
        assert list(np.flatnonzero(non_dominated(p))) == brute_front(p)


def inclusion_exclusion(points, ref):
    """Exact hypervolume by inclusion-exclusion over every subset (small sets only)."""
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(points, size):
            corner = np.min(subset, axis=0)
            total += (-1) ** (size + 1) * np.prod(np.clip(corner - ref, 0, None))
    return total


@pytest.mark.parametrize("dim", [1, 2, 3, 4, 5])
def test_hypervolume_is_exact_against_inclusion_exclusion(dim):
    rng = np.random.default_rng(dim)
    for trial in range(25):
        n = int(rng.integers(1, 9))
        points = rng.random((n, dim))
        if trial % 3 == 0:  # ties and repeated coordinates
            points = np.round(points * 3) / 3
        ref = np.zeros(dim) - (0.1 if trial % 2 else 0.0)
        expected = inclusion_exclusion(points, ref)
        assert hypervolume(points, ref) == pytest.approx(expected, abs=1e-12)


def test_hypervolume_of_known_cases_and_a_monte_carlo_estimate():
    assert hypervolume([[1, 1, 1, 1]], np.zeros(4)) == 1.0
    assert hypervolume([[2, 1], [1, 2]], np.zeros(2)) == 3.0
    assert hypervolume([], np.zeros(4)) == 0.0
    assert hypervolume([[-1, 5, 5, 5]], np.zeros(4)) == 0.0  # not better than the reference
    rng = np.random.default_rng(7)
    points = rng.random((40, 4)) ** 0.3
    exact = hypervolume(points, np.zeros(4))
    samples = rng.random((400_000, 4))
    covered = np.zeros(len(samples), bool)
    for p in points:
        covered |= (samples <= p).all(axis=1)
    estimate, se = covered.mean(), covered.std() / math.sqrt(len(samples))
    assert abs(exact - estimate) < 4 * se


def test_igd_and_reference_point(table):
    front = pareto_front(table)
    assert igd(front.points, front.points) == 0.0
    assert igd(np.concatenate([front.points, table_objectives(table)]), front.points) == 0.0
    assert igd([[0.0, 0.0]], np.array([[3.0, 4.0]])) == 5.0
    assert igd([[0.0, 0.0]], np.array([[3.0, 4.0]]), scale=np.array([3.0, 4.0])) == math.sqrt(2)
    assert igd([], front.points) == math.inf
    points = table_objectives(table)
    ref = reference_point(points)
    assert hypervolume(points, ref) == pytest.approx(hypervolume(front.points, ref))


# -- agents ----------------------------------------------------------------------------------------


def test_ranks_and_crowding():
    points = np.array([[3, 0], [2, 2], [0, 3], [1, 1], [0, 0]], float)
    assert list(non_dominated_ranks(points)) == [0, 0, 0, 1, 2]
    crowd = crowding_distances(points[:3])
    assert crowd[0] == crowd[2] == math.inf and crowd[1] == pytest.approx(2.0)


@pytest.mark.parametrize("name", list(MO_AGENTS))
def test_every_agent_spends_its_budget_seeded(name, table):
    if name in ("nsga2", "motpe"):
        pytest.importorskip("optuna")
    runs = []
    for _ in range(2):
        agent = MO_AGENTS[name](seed=3)
        result = run_mo_search(make_env(table), agent, Budget(evaluations=30), seed=3)
        assert len(result.trials) == 30 and result.invalid_episodes == 0
        assert [t.number for t in result.trials] == list(range(1, 31))
        assert all(len(t.objectives) == 4 for t in result.trials)
        runs.append([(t.arch, t.objectives) for t in result.trials])
    assert runs[0] == runs[1]


def test_the_optuna_agents_restore_its_log_level(table):
    optuna = pytest.importorskip("optuna")
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        run_mo_search(make_env(table), MO_AGENTS["nsga2"](seed=0), Budget(5), seed=0)
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(previous)


def test_the_runner_keeps_a_single_objective_history_and_seconds(table):
    runner = MOSearchRunner(make_env(table), Budget(evaluations=4))
    runner.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(4):
        trial = runner.evaluate_mo(TINY_SPACE.sample(rng))
    assert runner.exhausted and len(runner.history) == len(runner.trials) == 4
    assert runner.history[-1].reward == trial.objectives[0]
    assert trial.total_seconds == pytest.approx(sum(t.cost_seconds for t in runner.trials))


# -- MO-Gymnasium ------------------------------------------------------------------------------


def test_mo_gymnasium_make_linear_reward_and_episode_statistics():
    mo_gym = pytest.importorskip("mo_gymnasium")
    env = mo_gym.make(MO_ENV_ID)
    assert isinstance(env.unwrapped, RecNASMOEnv)
    stats = mo_gym.wrappers.MORecordEpisodeStatistics(env, gamma=1.0)
    rewards, info = episode(stats, np.random.default_rng(0), seed=0)
    assert np.allclose(info["episode"]["r"], rewards[-1]) and info["episode"]["l"] == len(SLOTS)
    weights = np.array([1.0, 0.01, 0.01, 0.0], np.float32)
    linear = mo_gym.wrappers.LinearReward(mo_gym.make(MO_ENV_ID), weight=weights)
    rewards, info = episode(linear, np.random.default_rng(0), seed=0)
    assert all(r == 0 for r in rewards[:-1])
    assert rewards[-1] == pytest.approx(float(info["vector_reward"] @ weights))


def test_mo_gymnasium_sync_vector_env_autoresets_with_zero_rewards():
    mo_gym = pytest.importorskip("mo_gymnasium")
    envs = mo_gym.wrappers.vector.MOSyncVectorEnv([lambda: mo_gym.make(MO_ENV_ID)] * 3)
    assert envs.reward_space.shape == (4,)
    _, infos = envs.reset(seed=0)
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(3 * len(SLOTS) + 3):
        masks = infos["action_mask"].astype(bool)
        actions = np.array([int(rng.choice(np.flatnonzero(m))) for m in masks])
        _, rewards, terminated, _, infos = envs.step(actions)
        assert rewards.shape == (3, 4) and rewards.dtype == np.float32
        assert not rewards[~terminated].any()
        for row in np.flatnonzero(terminated):
            assert envs.reward_space.contains(rewards[row])
            finished += 1
    assert finished == 9
    envs.close()


def test_a_subset_of_objectives_is_chosen_by_name_and_checked():
    import gymnasium as gym

    from nasenv.multiobjective import OBJECTIVE_NAMES, pareto_front, table_objectives
    from nasenv.table import load_table

    env = gym.make("RecNAS-Books-MO-v0", objectives=("train_seconds", "quality"))
    full = gym.make("RecNAS-Books-MO-v0")
    assert env.unwrapped.reward_space.shape == (2,)
    assert list(env.unwrapped.reward_space.low) == [-6.0, 0.0]
    for e in (env, full):
        e.reset(seed=3)
    done = False
    while not done:
        action = int(np.flatnonzero(full.unwrapped.action_masks())[0])
        _, reward, done, _, _ = env.step(action)
        _, whole, _, _, _ = full.step(action)
        assert reward.shape == (2,)
    assert list(reward) == [whole[1], whole[0]]
    table = load_table("Books-20core")
    two = pareto_front(table, objectives=["quality", "train_seconds"])
    assert two.points.shape[1] == 2 and len(two.rows) < len(pareto_front(table).rows)
    np.testing.assert_array_equal(two.points, table_objectives(table)[two.rows][:, [0, 1]])
    for bad in (["quality", "latency"], [], ["quality", "quality"]):
        with pytest.raises(ValueError, match=str(list(OBJECTIVE_NAMES)).replace("[", r"\[")):
            gym.make("RecNAS-Books-MO-v0", objectives=bad)
