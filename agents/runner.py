"""The search loop every agent shares: budget, history, best architecture, final report.

:class:`SearchRunner` wraps a RecNAS environment. Agents either step it like any Gymnasium env
(the RL agents) or hand it whole architectures through :meth:`SearchRunner.evaluate` (the
black-box baselines), which plays the decisions through the same ``step`` calls. Either way every
finished architecture becomes a :class:`Trial` in :attr:`SearchRunner.history`.

How the budget counts:

* every evaluation counts once, **including repeats of an architecture already evaluated**, and
  charges its training seconds again. The table answers a repeat instantly, but a search that
  trained for real would have paid for it (or for the memory to avoid it), so an agent that wants
  to avoid repeats has to remember them itself;
* an evaluation that starts while budget is left runs to the end (the seconds budget may be
  overshot by the last one, as a real training would); no evaluation starts after that
  (:class:`BudgetExhausted`);
* an invalid action (an agent that ignores the masks) ends the episode without training; it costs
  no evaluation and is counted in :attr:`SearchRunner.invalid_episodes`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from nasenv.space import SLOTS, Architecture, SearchSpace


class BudgetExhausted(RuntimeError):
    """An evaluation was asked for after the search budget was spent."""


@dataclass(frozen=True)
class Budget:
    """When a search stops: after ``evaluations`` architectures and/or ``seconds`` of simulated
    training (the evaluations' ``cost_seconds``), whichever comes first."""

    evaluations: int | None = 300
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.evaluations is None and self.seconds is None:
            raise ValueError("a budget needs evaluations, seconds or both")
        if self.evaluations is not None and self.evaluations < 1:
            raise ValueError(f"evaluations must be >= 1, got {self.evaluations}")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")


@dataclass(frozen=True)
class Trial:
    """One evaluated architecture. ``number`` counts evaluations from 1."""

    number: int
    arch: str
    reward: float
    val_recall: float
    val_ndcg: float
    seed: int | None
    status: str
    cost_seconds: float
    total_seconds: float


class SearchRunner(gym.Wrapper):
    """A RecNAS env that records every evaluation and enforces a :class:`Budget`.

    Args:
        env: a ``RecNAS-Books`` environment (from ``gym.make`` or ``RecNASEnv``).
        budget: when to stop.
        on_trial: called with every new :class:`Trial` (progress bars, logging).
    """

    def __init__(
        self,
        env: gym.Env,
        budget: Budget,
        on_trial: Callable[[Trial], None] | None = None,
    ) -> None:
        super().__init__(env)
        self.budget = budget
        self.on_trial = on_trial
        self.history: list[Trial] = []
        self.invalid_episodes = 0
        self.total_seconds = 0.0

    @property
    def space(self) -> SearchSpace:
        return self.env.unwrapped.space

    @property
    def exhausted(self) -> bool:
        """True once no further evaluation may start."""
        spent = self.budget.evaluations is not None and len(self.history) >= self.budget.evaluations
        late = self.budget.seconds is not None and self.total_seconds >= self.budget.seconds
        return spent or late

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        if self.exhausted and self.env.unwrapped.completes(action):
            raise BudgetExhausted(
                f"budget {self.budget} spent after {len(self.history)} evaluations and "
                f"{self.total_seconds:.0f} s of simulated training"
            )
        obs, reward, terminated, truncated, info = self.env.step(action)
        if info.get("invalid_action"):
            self.invalid_episodes += 1
        elif terminated and "arch" in info:
            self.total_seconds += info["cost_seconds"]
            trial = Trial(
                number=len(self.history) + 1,
                arch=info["arch"],
                reward=float(reward),
                val_recall=info["val_recall"],
                val_ndcg=info["val_ndcg"],
                seed=info["seed"],
                status=info["status"],
                cost_seconds=info["cost_seconds"],
                total_seconds=self.total_seconds,
            )
            self.history.append(trial)
            if self.on_trial is not None:
                self.on_trial(trial)
        return obs, reward, terminated, truncated, info

    def evaluate(self, arch: Architecture | Sequence[Any]) -> Trial:
        """Play ``arch`` (or its decision values) as one episode; the recorded :class:`Trial`."""
        values = arch.decisions() if isinstance(arch, Architecture) else list(arch)
        if self.exhausted:
            raise BudgetExhausted(f"budget {self.budget} spent")
        if len(values) != len(SLOTS):
            raise ValueError(f"expected {len(SLOTS)} decisions, got {len(values)}")
        self.reset()
        unwrapped, terminated = self.env.unwrapped, False
        while not terminated:  # the env may take forced decisions itself (skip_forced)
            slot = len(unwrapped.decisions)
            _, _, terminated, _, info = self.step(SLOTS[slot].choices.index(values[slot]))
        if info.get("invalid_action"):
            raise ValueError(info["reason"])
        return self.history[-1]

    def best(self) -> Trial:
        """The trial with the highest reward (the earliest among ties)."""
        if not self.history:
            raise RuntimeError("no architecture has been evaluated")
        return max(self.history, key=lambda t: (t.reward, -t.number))


@dataclass
class SearchResult:
    """What a search found, and what it cost."""

    agent: str
    seed: int
    budget: Budget
    history: list[Trial]
    best: Trial | None  # None if the search ended without evaluating anything
    test_metrics: dict[str, float]
    wall_seconds: float
    invalid_episodes: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def best_so_far(self) -> np.ndarray:
        """Best reward after each evaluation (for regret curves)."""
        return np.maximum.accumulate([t.reward for t in self.history])

    def summary(self) -> str:
        best = self.best
        if best is None:
            return (
                f"{self.agent} (seed {self.seed}): no architecture evaluated "
                f"({self.invalid_episodes} invalid episodes)"
            )
        metrics = self.test_metrics
        test = (
            f"\n  test Recall@20 {metrics['test_recall']:.4f}, NDCG@20 {metrics['test_ndcg']:.4f}"
            if metrics
            else ""
        )
        total = self.history[-1].total_seconds
        return (
            f"{self.agent} (seed {self.seed}): {len(self.history)} evaluations, "
            f"{total / 3600:.2f} h of simulated training ({best.total_seconds / 3600:.2f} h to "
            f"the best), {self.wall_seconds:.1f} s wall\n"
            f"best (evaluation {best.number}): {best.arch}\n"
            f"  validation Recall@20 {best.val_recall:.4f}, NDCG@20 {best.val_ndcg:.4f}{test}"
        )


def final_test_metrics(
    runner: SearchRunner, arch: str, fresh_seeds: Sequence[int] | None = None
) -> dict[str, float]:
    """Test metrics of the selected architecture, averaged over ``fresh_seeds`` if given (live
    back end: new trainings) or over the env's evaluation seeds (table: the stored ones)."""
    return runner.env.unwrapped.test_metrics(arch, list(fresh_seeds) if fresh_seeds else None)


def run_search(
    agent: Any,
    env: gym.Env,
    budget: Budget,
    seed: int = 0,
    on_trial: Callable[[Trial], None] | None = None,
    fresh_seeds: Sequence[int] | None = None,
) -> SearchResult:
    """Run ``agent`` (an :class:`agents.base.Agent`) on ``env`` until ``budget`` is spent."""
    runner = SearchRunner(env, budget, on_trial)
    runner.reset(seed=seed)
    runner.action_space.seed(seed)
    start = time.perf_counter()
    with contextlib.suppress(BudgetExhausted):  # an agent may stop by running into the budget
        agent.search(runner)
    wall = time.perf_counter() - start
    best = runner.best() if runner.history else None
    return SearchResult(
        agent=agent.name,
        seed=seed,
        budget=budget,
        history=list(runner.history),
        best=best,
        test_metrics=final_test_metrics(runner, best.arch, fresh_seeds) if best else {},
        wall_seconds=wall,
        invalid_episodes=runner.invalid_episodes,
        hyperparameters=agent.hyperparameters(),
    )
