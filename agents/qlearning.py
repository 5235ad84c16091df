"""Tabular Q-learning over decision prefixes, as in MetaQNN (Baker et al. 2017, "Designing
Neural Network Architectures using Reinforcement Learning")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agents.base import Agent
from agents.runner import SearchRunner
from nasenv.env import N_ACTIONS

State = tuple[Any, ...]


@dataclass
class QLearning(Agent):
    """Epsilon-greedy tabular Q-learning; the state is the sequence of decisions made so far.

    Every episode is one architecture; the reward arrives at its last decision. After each
    episode the Q-table is updated on that episode and on ``replay`` episodes drawn from all past
    ones (MetaQNN's experience replay), each backwards from the terminal step:
    ``Q(s, a) <- (1 - lr) Q(s, a) + lr (r + discount * max_a' Q(s', a'))`` with the max over the
    valid actions of ``s'``.

    Args:
        learning_rate: 1.0: each update replaces a value by its target (the most recent return
            of that step, from the episode or a replayed one), rather than averaging returns as
            MetaQNN's 0.01 did over tens of thousands of updates. The docstring said 0.1 until
            package 0.2.0 while the code (and so the leaderboard) has always used 1.0;
            ``benchmarks/RESULTS.md`` measures both.
        discount: 1.0, as in MetaQNN: every decision shares the final reward.
        epsilon_start: 1.0, all random, as MetaQNN starts; exploration decays linearly from it.
        epsilon_end: 0.1, MetaQNN's last stage.
        explore_fraction: 1.0, the share of the evaluation budget over which epsilon decays (then
            fixed). The schedule needs an evaluation budget: a search with only a seconds budget
            is refused.
        replay: 20, past episodes replayed after each episode (MetaQNN: 100 per iteration).
        initial_q: 0.0, the Q-value of unseen (state, action) pairs: below every reward, so that
            greedy steps prefer actions already seen to pay (MetaQNN's 0.5 was optimistic for
            accuracies near 0.9; here rewards are about 0.1).
    """

    name: ClassVar[str] = "qlearning"
    seed: int = 0
    learning_rate: float = 1.0
    discount: float = 1.0
    epsilon_start: float = 1.0
    epsilon_end: float = 0.1
    explore_fraction: float = 1.0
    replay: int = 20
    initial_q: float = 0.0

    def epsilon(self, evaluations: int, budget: int) -> float:
        """Exploration rate after ``evaluations`` of ``budget`` evaluations."""
        progress = min(1.0, evaluations / max(1.0, self.explore_fraction * budget))
        return self.epsilon_start + progress * (self.epsilon_end - self.epsilon_start)

    def search(self, runner: SearchRunner) -> None:
        rng = np.random.default_rng(self.seed)
        q: dict[State, np.ndarray] = {}
        masks: dict[State, np.ndarray] = {}
        episodes: list[tuple[list[tuple[State, int]], float]] = []
        budget = runner.budget.evaluations
        if budget is None:
            raise ValueError(
                f"qlearning decays its exploration over an evaluation budget; got {runner.budget}: "
                "give Budget(evaluations=N) (a seconds limit may be added)"
            )

        def values(state: State) -> np.ndarray:
            if state not in q:
                q[state] = np.full(N_ACTIONS, self.initial_q)
            return q[state]

        while not runner.exhausted:
            epsilon = self.epsilon(len(runner.history), budget)
            _, info = runner.reset()
            state: State = ()
            steps: list[tuple[State, int]] = []
            terminated, reward = False, 0.0
            while not terminated:
                valid = np.flatnonzero(info["action_mask"])
                masks[state] = info["action_mask"].astype(bool)
                if rng.random() < epsilon:
                    action = int(rng.choice(valid))
                else:
                    scores = values(state)[valid]
                    action = int(rng.choice(valid[scores == scores.max()]))
                steps.append((state, action))
                _, reward, terminated, _, info = runner.step(action)
                state = (*state, action)
            episodes.append((steps, float(reward)))
            self._learn(episodes[-1], values, masks)
            for i in rng.integers(len(episodes), size=min(self.replay, len(episodes))):
                self._learn(episodes[int(i)], values, masks)

    def _learn(
        self,
        episode: tuple[list[tuple[State, int]], float],
        values: Any,
        masks: dict[State, np.ndarray],
    ) -> None:
        steps, reward = episode
        target = reward
        for state, action in reversed(steps):
            row = values(state)
            row[action] += self.learning_rate * (target - row[action])
            target = self.discount * float(row[masks[state]].max())
