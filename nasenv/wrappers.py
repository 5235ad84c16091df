"""Wrappers for RL libraries that want the action mask inside the observation (RLlib).

RLlib's action-masking convention (its example ``ActionMaskingTorchRLModule``, in
``ray/rllib/examples/rl_modules/classes/action_masking_rlm.py``) is a ``gymnasium.spaces.Dict``
observation with two keys: ``"action_mask"``, a ``Box(0, 1, (n_actions,), float32)`` of 1.0 for
valid and 0.0 for invalid actions, and ``"observations"``, the env's own observation. The module
feeds ``"observations"`` to its networks and adds ``log(mask)`` (clamped at ``-3.4e38``) to the
action logits, so an invalid action is never sampled. :class:`RLlibActionMask` turns the flat
``Box`` observation of ``RecNAS-Books-*`` into that form, and :func:`rllib_env_creator` builds the
wrapped env from an RLlib ``env_config``. RLlib takes an env as a registered name or a class, not
a function, so register the creator under a name first::

    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.rllib.examples.rl_modules.classes.action_masking_rlm import (
        ActionMaskingTorchRLModule,
    )
    from ray.tune import register_env

    from nasenv.wrappers import rllib_env_creator

    register_env("RecNAS-Books-Masked", rllib_env_creator)
    config = (
        PPOConfig()
        .environment(env="RecNAS-Books-Masked", env_config={"metric": "recall"})
        .rl_module(rl_module_spec=RLModuleSpec(module_class=ActionMaskingTorchRLModule))
    )

Registration on remote workers: RLlib's env runners in other processes build their own env.
``register_env`` stores the creator (pickled by reference: a module-level function) in the Ray
cluster, and each runner looks the name up there and calls it with its ``EnvContext`` (a dict of
``env_config``); unpickling imports ``nasenv.wrappers``, hence ``nasenv``. The creator makes
``gym.make("nasenv:RecNAS-Books-v0", ...)``: the ``nasenv:`` prefix makes gymnasium import
``nasenv`` (which registers the ids) before it looks the id up, so the id resolves in any
process, even one that never imported the package; the same holds for the unmasked env given as
a plain id, ``config.environment(env="nasenv:RecNAS-Books-v0")``.

This module does not import ray. Run with Ray 2.60.0 on RLlib's new API stack (``RLModule``,
``SingleAgentEnvRunner``, ``PPOConfig`` with ``ActionMaskingTorchRLModule``), gymnasium 1.2.2,
torch 2.13.0 (CPU) and Python 3.11, with 0 and 1 remote env runners
(``scripts/rllib_masked_ppo.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ENV_ID = "nasenv:RecNAS-Books-v0"
"""The default id of :func:`rllib_env_creator` (the benchmark env, table back end)."""

MaskedObservation = dict[str, np.ndarray]
"""``{"action_mask": float32 mask, "observations": the env's observation}``."""


class RLlibActionMask(
    gym.ObservationWrapper[MaskedObservation, int, np.ndarray], gym.utils.RecordConstructorArgs
):
    """Put the env's current valid actions into the observation, as RLlib's masked PPO wants.

    The observation space becomes ``Dict({"action_mask": Box(0, 1, (n_actions,), float32),
    "observations": <the env's observation space>})``. ``"action_mask"`` is
    ``env.unwrapped.action_masks()`` as float32 (1.0 valid, 0.0 invalid) for the slot about to be
    decided, so it equals ``info["action_mask"]``.

    Terminal observations: the mask is never all zeros. ``RecNASEnv`` reports, once an episode
    has ended, the mask of the next episode's first slot, and the wrapper passes it on like any
    other; an env whose ``action_masks()`` is all ``False`` there (earlier versions of
    ``RecNASEnv`` did that) gets **all ones** instead. Either is safe: no action is taken from a
    terminal observation. RLlib's vector env (autoreset ``NEXT_STEP``) discards the action the
    module computes for it and resets, and PPO uses the terminal observation only to bootstrap
    the value function (zeroed at ``terminated``; the extra timestep is outside the loss mask).
    An all-zero mask would set every logit of RLlib's ``ActionMaskingTorchRLModule`` to
    ``-3.4e38`` for that dropped timestep. A masked policy never takes an invalid action; an
    unmasked one can, and the env ends that episode with ``invalid_reward``.

    ``"observations"`` is the env's observation unchanged (the same ``Box(0, 1, (65,), float32)``
    for ``RecNAS-Books-*``).

    Works on any env whose action space is ``Discrete`` and whose unwrapped env has
    ``action_masks()`` (bool per action), under any wrappers that keep the action space. It
    records itself in ``env.spec`` (``RecordConstructorArgs``), so ``env.spec.make()`` and
    ``gymnasium.utils.env_checker.check_env`` rebuild it.
    """

    def __init__(self, env: gym.Env[np.ndarray, int]) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        if not isinstance(env.action_space, spaces.Discrete):
            raise TypeError(f"action masks need a Discrete action space, not {env.action_space}")
        if not callable(getattr(env.unwrapped, "action_masks", None)):
            raise TypeError(f"{env.unwrapped!r} has no action_masks() method")
        n_actions = int(env.action_space.n)
        # gymnasium declares Dict a Space[dict[str, Space]], not a space of its samples' type
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "action_mask": spaces.Box(0.0, 1.0, (n_actions,), dtype=np.float32),
                "observations": env.observation_space,
            }
        )
        self._all_ones = np.ones(n_actions, dtype=np.float32)

    def action_mask(self) -> np.ndarray:
        """The mask the next observation carries: the env's valid actions (all ones if none)."""
        mask = np.asarray(self.env.unwrapped.action_masks(), dtype=np.float32)  # type: ignore[attr-defined]
        return mask if mask.any() else self._all_ones.copy()

    def observation(self, observation: np.ndarray) -> MaskedObservation:
        return {"action_mask": self.action_mask(), "observations": observation}


def rllib_env_creator(config: Mapping[str, Any] | None = None) -> gym.Env:
    """Build ``RLlibActionMask(gym.make(env_id, **config))`` from an RLlib ``env_config``.

    ``config`` holds the env's keyword arguments (``metric``, ``seed_policy``, ``dataset``, ...;
    see ``nasenv.env.RecNASEnv``) plus an optional ``"env_id"`` (default
    ``"nasenv:RecNAS-Books-v0"``, e.g. ``"nasenv:RecNAS-Books-Surrogate-v0"``). RLlib passes an
    ``EnvContext``, a dict subclass; only its items are used. Register it with
    ``ray.tune.register_env(name, rllib_env_creator)``, then
    ``config.environment(env=name, env_config={...})``.
    """
    kwargs = dict(config or {})
    env_id = str(kwargs.pop("env_id", ENV_ID))
    return RLlibActionMask(gym.make(env_id, **kwargs))
