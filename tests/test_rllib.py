"""RLlib support: the masked-observation wrapper (no ray needed) and one RLlib PPO smoke test
(skipped where ``ray.rllib`` is not installed)."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import nasenv  # noqa: F401 - registers the ids
from nasenv.wrappers import ENV_ID, RLlibActionMask, rllib_env_creator

ROOT = Path(__file__).resolve().parents[1]


def masked_episode(
    env: gym.Env, rng: np.random.Generator, seed: int | None = None
) -> list[tuple[dict[str, np.ndarray], dict[str, Any], np.ndarray]]:
    """Play one episode with actions drawn from the observation's mask; per step the
    observation, the info and the unwrapped env's ``action_masks()`` right then."""
    masks = env.unwrapped.action_masks  # type: ignore[attr-defined]
    obs, info = env.reset(seed=seed)
    steps = [(obs, info, masks())]
    done = False
    while not done:
        action = int(rng.choice(np.flatnonzero(obs["action_mask"])))
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append((obs, info, masks()))
        done = terminated or truncated
        assert not info.get("invalid_action", False)
        assert float(reward) >= 0.0
    return steps


def test_observation_space_is_rllibs_masked_dict():
    env = rllib_env_creator({})
    plain = gym.make("RecNAS-Books-v0")
    assert isinstance(env.observation_space, spaces.Dict)
    assert list(env.observation_space.spaces) == ["action_mask", "observations"]
    mask_space = env.observation_space["action_mask"]
    assert isinstance(mask_space, spaces.Box)
    assert mask_space.shape == (plain.action_space.n,)
    assert mask_space.dtype == np.float32
    assert (mask_space.low == 0).all() and (mask_space.high == 1).all()
    assert env.observation_space["observations"] == plain.observation_space
    assert env.action_space == plain.action_space


def test_masked_episodes_stay_in_the_space_with_the_envs_mask_never_all_zero():
    env = rllib_env_creator({})
    rng = np.random.default_rng(0)
    for episode in range(30):
        steps = masked_episode(env, rng, seed=episode)
        assert steps[-1][1]["arch"]  # every masked episode builds an architecture
        for obs, info, env_mask in steps:
            assert env.observation_space.contains(obs)
            mask = obs["action_mask"]
            assert mask.dtype == np.float32 and mask.any()
            np.testing.assert_array_equal(mask, env_mask.astype(np.float32))
            np.testing.assert_array_equal(mask, info["action_mask"].astype(np.float32))


def test_observations_are_the_plain_envs():
    env, plain = rllib_env_creator({}), gym.make("RecNAS-Books-v0")
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=3)
    plain_obs, _ = plain.reset(seed=3)
    done = False
    while not done:
        np.testing.assert_array_equal(obs["observations"], plain_obs)
        action = int(rng.choice(np.flatnonzero(obs["action_mask"])))
        obs, reward, terminated, truncated, _ = env.step(action)
        plain_obs, plain_reward, *_ = plain.step(action)
        assert reward == plain_reward
        done = terminated or truncated
    np.testing.assert_array_equal(obs["observations"], plain_obs)


class _Stub(gym.Env[np.ndarray, int]):
    """Two decisions of three actions; like older RecNASEnv, no valid action once done."""

    def __init__(self) -> None:
        self.action_space = spaces.Discrete(3)
        self.observation_space = spaces.Box(0.0, 1.0, (2,), dtype=np.float32)
        self.t = 0

    def action_masks(self) -> np.ndarray:
        return np.array([self.t < 2, self.t == 0, False])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: int):
        self.t += 1
        return np.full(2, self.t / 2, np.float32), 0.0, self.t == 2, False, {}


def test_a_terminal_all_false_mask_becomes_all_ones():
    env = RLlibActionMask(_Stub())
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs["action_mask"], [1, 1, 0])
    obs, *_ = env.step(0)
    np.testing.assert_array_equal(obs["action_mask"], [1, 0, 0])
    obs, _, terminated, _, _ = env.step(0)
    assert terminated
    np.testing.assert_array_equal(obs["action_mask"], [1, 1, 1])
    assert env.observation_space.contains(obs)


def test_an_unmasked_invalid_action_ends_at_minus_one_with_a_usable_mask():
    env = rllib_env_creator({})
    obs, _ = env.reset(seed=0)
    invalid = int(np.flatnonzero(obs["action_mask"] == 0)[0])
    obs, reward, terminated, _, info = env.step(invalid)
    assert terminated and reward == -1.0 and info["invalid_action"]
    assert env.observation_space.contains(obs) and obs["action_mask"].any()


def test_vector_env_autoreset_never_hands_an_all_zero_mask():
    """RLlib samples through a gymnasium ``SyncVectorEnv`` (next-step autoreset)."""
    envs = gym.vector.SyncVectorEnv([lambda: rllib_env_creator({}) for _ in range(3)])
    rng = np.random.default_rng(2)
    obs, _ = envs.reset(seed=0)
    finished = 0
    for _ in range(60):
        assert envs.observation_space.contains(obs)
        assert obs["action_mask"].any(axis=1).all()
        actions = [int(rng.choice(np.flatnonzero(mask))) for mask in obs["action_mask"]]
        obs, rewards, terminated, _, _ = envs.step(np.array(actions))
        assert (rewards >= 0).all()
        finished += int(terminated.sum())
    assert finished >= 3


def test_check_env_passes_and_spec_make_rebuilds_the_wrapper():
    env = rllib_env_creator({})
    assert env.spec is not None
    assert env.spec.additional_wrappers[-1].entry_point == "nasenv.wrappers:RLlibActionMask"
    assert isinstance(env.spec.make(), RLlibActionMask)
    from nasenv.env import RecNASEnv

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # check_env always says so of a wrapped env; RLlibActionMask is that wrapper.
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        warnings.filterwarnings("ignore", message=".*alternative render modes")  # no spec
        check_env(env)
        check_env(RLlibActionMask(RecNASEnv()))


def test_creator_passes_env_config_and_env_id():
    class EnvContextLike(dict):
        """RLlib's EnvContext: a dict of env_config plus runner attributes."""

        worker_index = 1
        num_workers = 1

    env = rllib_env_creator(EnvContextLike(metric="ndcg", seed_policy="fixed"))
    assert isinstance(env, RLlibActionMask)
    assert env.unwrapped.metric == "ndcg" and env.unwrapped.seed_policy == "fixed"
    assert env.spec is not None and env.spec.id == "RecNAS-Books-v0"
    other = rllib_env_creator({"env_id": "RecNAS-Books-Live-v0", "cache": None})
    assert other.spec is not None and other.spec.id == "RecNAS-Books-Live-v0"
    assert ENV_ID == "nasenv:RecNAS-Books-v0"


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_wrapper_rejects_envs_without_masks_or_discrete_actions(env_id):
    with pytest.raises(TypeError):
        RLlibActionMask(gym.make(env_id))


def test_creator_pickles_by_reference_and_the_prefixed_id_imports_nasenv():
    """What a remote env runner relies on: the creator unpickles by import, and the
    ``nasenv:`` id resolves in a process that never imported nasenv (nor ray)."""
    assert pickle.loads(pickle.dumps(rllib_env_creator)) is rllib_env_creator
    code = (
        "import sys, gymnasium as gym\n"
        "env = gym.make('nasenv:RecNAS-Books-v0')\n"
        "assert 'nasenv' in sys.modules\n"
        "from nasenv.wrappers import rllib_env_creator\n"
        "obs, _ = rllib_env_creator({}).reset(seed=0)\n"
        "assert obs['action_mask'].any()\n"
        "assert 'ray' not in sys.modules, 'nasenv.wrappers imported ray'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def _script() -> ModuleType:
    path = ROOT / "scripts" / "rllib_masked_ppo.py"
    spec = importlib.util.spec_from_file_location("rllib_masked_ppo", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_rllib_masked_ppo_trains_one_iteration_without_invalid_actions():
    """One PPO iteration of the example script's config with a tiny batch (~30 s, most of it
    starting Ray)."""
    pytest.importorskip("ray.rllib")
    import ray
    from ray.tune import register_env

    script = _script()
    args = script.Args(iterations=1, batch_size=48, minibatch_size=24, num_epochs=1)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        register_env(script.MASKED_ENV, rllib_env_creator)
        algo = script.make_config(args).build_algo()
        runners = algo.train()["env_runners"]
        assert runners["num_env_steps_sampled"] >= 48
        assert runners["num_episodes"] >= 1
        assert runners["episode_return_min"] >= 0.0  # no episode ended at an invalid action
        architectures = runners.get("architectures", [])
        assert architectures and all(arch != script.INVALID for _, arch in architectures)
        arch, reward = script.greedy_architecture(algo.get_module(), args)
        assert arch is not None and reward >= 0.0
        algo.stop()
    finally:
        ray.shutdown()
