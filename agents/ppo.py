"""Proximal Policy Optimization (Schulman et al. 2017, "Proximal Policy Optimization
Algorithms") on the decision-by-decision environment, with invalid-action masking (Huang &
Ontañón 2022, "A Closer Look at Invalid Action Masking in Policy Gradient Algorithms"; sb3-contrib's
``MaskablePPO``) and without it (Stable-Baselines3's ``PPO``, the ablation that has to learn the
space's rules from the environment's penalty)."""

from __future__ import annotations

import random
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from agents.base import Agent, restored_global_rngs, single_threaded
from agents.runner import SearchRunner
from nasenv.space import SLOTS

_python_rng = random.getstate()  # importing Stable-Baselines3 draws from Python's generator
try:
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import is_masking_supported
    from stable_baselines3 import PPO
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.callbacks import BaseCallback
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the PPO agents need Stable-Baselines3 and sb3-contrib: pip install 'recnas-books[rl]'"
    ) from error
finally:
    random.setstate(_python_rng)

TOTAL_TIMESTEPS = 10**12
"""Passed to ``learn``: never reached, the search ends through :class:`StopWhenSpent`."""


class StopWhenSpent(BaseCallback):
    """Ends ``learn`` once the runner's budget is spent, or after ``max_steps`` env steps."""

    def __init__(self, runner: SearchRunner, max_steps: int | None = None) -> None:
        super().__init__(verbose=0)
        self.runner = runner
        self.max_steps = max_steps

    def _on_step(self) -> bool:
        capped = self.max_steps is not None and self.num_timesteps >= self.max_steps
        return not (self.runner.exhausted or capped)


@dataclass
class _PPOAgent(Agent):
    """Shared hyperparameters and search loop of the PPO agents.

    The policy and value function are SB3's ``MlpPolicy`` (two hidden layers of 64) on the
    environment's one-hot observation; one episode is one architecture of ``len(SLOTS)`` = 12
    decisions, and the reward comes at its last step. The defaults are sized for budgets of a
    few hundred evaluations, where SB3's defaults (tuned for millions of steps) would not finish
    a single update.

    Args:
        learning_rate: 0.003, the Adam step size (SB3: 3e-4). A search makes only 10 to 50 updates;
            with a planted optimum (``tests/test_agents_rl.py``) 3e-3 found better architectures
            than 1e-3 after 50 and 100 evaluations and the same optimum after 300.
        n_steps: 120 environment steps per update, 10 episodes (SB3: 2048 = 170 episodes, more
            than a whole search).
        batch_size: 60, the minibatch size, half a rollout (SB3: 64); whole-rollout batches (120)
            halve the gradient steps and learned more slowly.
        n_epochs: 10 passes over each rollout (SB3's default).
        gamma: discount. See the subclasses.
        gae_lambda: 1.0 (SB3: 0.95): Monte-Carlo advantages, the final reward minus the value
            estimate, unbiased by a value function that a few hundred episodes train poorly.
        ent_coef: entropy bonus (SB3: 0.0). See the subclasses.
        clip_range: 0.2, PPO's clipping (SB3's default and Schulman et al.'s).
    """

    seed: int = 0
    learning_rate: float = 3e-3
    n_steps: int = 10 * len(SLOTS)
    batch_size: int = 60
    n_epochs: int = 10
    gamma: float = 1.0
    gae_lambda: float = 1.0
    ent_coef: float = 0.01
    clip_range: float = 0.2

    def _ppo_kwargs(self) -> dict[str, Any]:
        return {
            "learning_rate": self.learning_rate,
            "n_steps": self.n_steps,
            "batch_size": self.batch_size,
            "n_epochs": self.n_epochs,
            "gamma": self.gamma,
            "gae_lambda": self.gae_lambda,
            "ent_coef": self.ent_coef,
            "clip_range": self.clip_range,
            "seed": self.seed,
            "device": "cpu",
            "verbose": 0,
        }

    @abstractmethod
    def _model(self, runner: SearchRunner) -> BaseAlgorithm:
        """The SB3 algorithm, built on ``runner``."""

    def _max_steps(self, runner: SearchRunner) -> int | None:
        """Cap on environment steps (``None``: none; the budget alone ends the search)."""
        return None

    def search(self, runner: SearchRunner) -> None:
        # SB3 seeds (and then draws from) the global random, NumPy and torch generators
        with single_threaded(), restored_global_rngs():
            model = self._model(runner)
            model.learn(TOTAL_TIMESTEPS, callback=StopWhenSpent(runner, self._max_steps(runner)))


@dataclass
class MaskablePPOAgent(_PPOAgent):
    """PPO with invalid-action masking: the policy's logits of invalid actions are replaced by a
    large negative number before sampling and in the loss, so every episode is a valid
    architecture and the gradient ignores actions that were never possible.

    The masks come from the environment's ``action_masks()``, which sb3-contrib reaches through
    the :class:`~agents.runner.SearchRunner` and SB3's ``Monitor`` wrappers.

    Args:
        gamma: 1.0 (SB3: 0.99): an episode is one architecture and only its final score counts,
            so every decision gets the undiscounted final reward.
        ent_coef: 0.01 (SB3: 0.0), against collapsing on the first good architecture. On the
            planted optimum 0.05 explored longer and found it within 300 evaluations in fewer
            seeds.
    """

    name: ClassVar[str] = "ppo"

    def _model(self, runner: SearchRunner) -> BaseAlgorithm:
        if not is_masking_supported(runner):
            raise TypeError(f"{runner.env!r} exposes no action_masks()")
        return MaskablePPO("MlpPolicy", runner, **self._ppo_kwargs())


@dataclass
class PlainPPOAgent(_PPOAgent):
    """PPO without masks: an invalid action ends the episode with the environment's penalty
    (``invalid_reward``, default -1) and costs no evaluation, so the agent has to learn the
    space's rules from the penalty alone.

    Because invalid episodes are free, the budget alone need not end a search whose policy keeps
    choosing invalid actions; ``max_env_steps`` caps it. On the 58-architecture test space, where
    a uniformly random episode is valid with probability about 3e-8, the first valid
    architecture came after about 4 500 steps (900 invalid episodes), and later ones about every
    20 steps, some episodes still ending invalid.

    Args:
        gamma: 0.99 (SB3's default). With 1.0 an invalid action late in an episode would cost as
            much as one at the first step, and while nearly every episode ends invalid the
            returns of valid and invalid actions are the same -1: there would be nothing to learn
            from. Discounting makes surviving one more decision worth about 1%, which the
            normalised advantages turn into a signal towards valid actions.
        ent_coef: 0.05 (SB3: 0.0). With 0.01 the policy settled on an invalid action at the
            eleventh decision and had produced no architecture after 30 000 steps.
        max_env_steps: 100_000, a cap on environment steps: room for the rules to be learned and
            a budget of a few thousand evaluations, and an end to a stuck search within minutes.
    """

    name: ClassVar[str] = "ppo-plain"
    gamma: float = 0.99
    ent_coef: float = 0.05
    max_env_steps: int = 100_000

    def _model(self, runner: SearchRunner) -> BaseAlgorithm:
        return PPO("MlpPolicy", runner, **self._ppo_kwargs())

    def _max_steps(self, runner: SearchRunner) -> int | None:
        return self.max_env_steps
