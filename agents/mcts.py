"""Monte-Carlo tree search over the decision sequence, in the form of AlphaX (Wang et al. 2019,
"AlphaX: eXploring Neural Architectures with Deep Neural Networks and Monte Carlo Tree Search")
without its Meta-DNN accuracy predictor: UCT (Kocsis & Szepesvári 2006, "Bandit based
Monte-Carlo Planning") with random rollouts, one evaluation per iteration."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from agents.base import Agent, valid_choices
from agents.runner import SearchRunner
from nasenv.space import Choice, SearchSpace

Prefix = tuple[Choice, ...]

ROLLOUTS = ("architecture", "decision")
"""The rollout policies of :class:`MCTS` (see its ``rollout`` hyperparameter)."""


@dataclass
class MCTS(Agent):
    """UCT on the tree of decision prefixes, each iteration one evaluated architecture.

    A node is a prefix of decisions in the order of the space's slots; its edges are
    the valid choices of the next slot (:func:`~agents.base.valid_choices`), so every path of
    ``len(space.slots)`` edges is an architecture of the runner's space. Each iteration

    1. *selects* from the root down through expanded nodes: a node with a child not yet in the
       tree expands one of them (chosen uniformly, so unvisited children come first in a seeded
       random order); otherwise it descends to the child of highest UCB1 score
       ``mean + exploration * sqrt(ln N_parent / n_child)`` (ties broken at random);
    2. *expands* that one new node;
    3. *rolls out* from it to a complete architecture at random (``rollout``);
    4. *evaluates* it (``runner.evaluate``, one unit of budget) and
    5. *backpropagates* its reward to every node of the path: each node's visit count and reward
       sum, whose ratio is the mean of UCB1.

    Scale of the exploration term: UCB1's constant assumes rewards in [0, 1], whereas rewards
    here (validation Recall@20) lie within a few hundredths of each other. Means are therefore
    normalised by the running range of the rewards seen so far, ``(mean - min) / (max - min)``
    (0 while every reward was equal), which maps the rewards seen into [0, 1] and makes the
    search invariant to the reward's offset and scale.

    Repeats: the tree counts, for every prefix, the distinct architectures evaluated below it; a
    prefix all of whose completions in the space (:meth:`~nasenv.space.SearchSpace.completions`)
    have been evaluated is *exhausted*, and neither selection nor rollouts enter it, so no
    architecture is evaluated twice until the whole space has been. From then on (the root
    exhausted) the search keeps going with repeats, so that it spends its budget like the other
    agents: the exhaustion marks are ignored, and selection descends through the tree to a leaf
    or rolls out below it as before, each repeat a fresh training seed on a random seed policy.

    The search walks the decision sequence itself and hands whole architectures to
    :meth:`~agents.runner.SearchRunner.evaluate`; it stops when the runner is exhausted, so it
    honours evaluation and seconds budgets alike.

    Args:
        exploration: 0.177, the UCB1 constant ``c`` on range-normalised means. UCB1 (Auer et al.
            2002, "Finite-time Analysis of the Multiarmed Bandit Problem"), which UCT applies at
            every node, uses ``sqrt(2)`` for rewards in [0, 1]; Kocsis & Szepesvári's bounds hold
            for a constant matched to the rewards' range, and in practice it is tuned. 0.177
            (``sqrt(2) / 8``) was picked from ``sqrt(2) * 2**(-k / 2)``, ``k = 0..8``, and 2,
            together with ``rollout``, on the planted task of ``tests/test_agents.py`` only
            (seeds 0-11; searches that find the optimum within 40 plus those within 80
            evaluations), never on the Books-20core table:
            ``benchmarks/results/mcts-tuning-planted.md``. UCB1's ``sqrt(2)`` itself explored too
            much there (0 of 24 such searches, against 23), since a run of a few hundred
            evaluations gives most nodes only a few visits.
        rollout: ``"decision"``: the rollout draws each remaining decision uniformly among the
            slot's valid choices whose subtrees are not exhausted, the uniform random playout of
            plain UCT. ``"architecture"``: uniformly among the node's completions not yet
            evaluated (random search's distribution, restricted to the subtree and to new
            architectures), where ``"decision"`` favours the few shallow models. Chosen with
            ``exploration`` on the planted task (21 of 24 for ``"architecture"`` at its best
            constant).
    """

    name: ClassVar[str] = "mcts"
    seed: int = 0
    exploration: float = 0.177
    rollout: str = "decision"

    def __post_init__(self) -> None:
        if (
            isinstance(self.exploration, bool)
            or not isinstance(self.exploration, (int, float))
            or not math.isfinite(self.exploration)
            or self.exploration < 0
        ):
            raise ValueError(
                f"exploration={self.exploration!r} is not allowed: give a finite number >= 0 "
                "(0: greedy on the normalised means)"
            )
        if self.rollout not in ROLLOUTS:
            raise ValueError(f"rollout={self.rollout!r} is not one of {list(ROLLOUTS)}")

    def search(self, runner: SearchRunner) -> None:
        _Search(self, runner.space, np.random.default_rng(self.seed)).run(runner)


class _Search:
    """The state of one search: the tree's statistics and the evaluated architectures."""

    def __init__(self, agent: MCTS, space: SearchSpace, rng: np.random.Generator) -> None:
        self.agent, self.space, self.rng = agent, space, rng
        self.visits: dict[Prefix, int] = {(): 0}  # the tree: every expanded node has an entry
        self.total: dict[Prefix, float] = {(): 0.0}
        self.evaluated: set[Prefix] = set()
        self.distinct: dict[Prefix, int] = {}  # distinct evaluated architectures below a prefix
        self.low, self.high = math.inf, -math.inf
        self.repeats = False  # True once every architecture of the space has been evaluated

    def run(self, runner: SearchRunner) -> None:
        while not runner.exhausted:
            if not self.repeats and self.exhausted(()):
                self.repeats = True
            path = self.select()
            values = self.roll_out(path[-1])
            reward = runner.evaluate(self.space.from_decisions(values)).reward
            self.record(values, reward, path)

    def exhausted(self, prefix: Prefix) -> bool:
        """Whether every completion of ``prefix`` has been evaluated (never, in repeats)."""
        if self.repeats:
            return False
        return self.distinct.get(prefix, 0) >= self.space.completions(prefix)

    def candidates(self, prefix: Prefix) -> list[Choice]:
        """The valid choices after ``prefix`` whose subtrees are not exhausted."""
        return [
            c for c in valid_choices(self.space, list(prefix)) if not self.exhausted((*prefix, c))
        ]

    def select(self) -> list[Prefix]:
        """The path from the root to the node expanded this iteration (or to a leaf)."""
        path: list[Prefix] = [()]
        node: Prefix = ()
        while len(node) < len(self.space.slots):
            choices = self.candidates(node)
            new = [c for c in choices if (*node, c) not in self.visits]
            if new:
                child = (*node, new[int(self.rng.integers(len(new)))])
                self.visits[child], self.total[child] = 0, 0.0
                path.append(child)
                return path
            node = self.best_child(node, choices)
            path.append(node)
        return path

    def best_child(self, node: Prefix, choices: list[Choice]) -> Prefix:
        """The child of ``node`` (among ``choices``, all in the tree) of highest UCB1 score."""
        children = [(*node, c) for c in choices]
        n = np.array([self.visits[c] for c in children], dtype=float)
        mean = np.array([self.total[c] for c in children]) / n
        spread = self.high - self.low
        normalised = (mean - self.low) / spread if spread > 0 else np.zeros_like(mean)
        score = normalised + self.agent.exploration * np.sqrt(math.log(self.visits[node]) / n)
        best = np.flatnonzero(score >= score.max() - 1e-12)
        return children[int(best[int(self.rng.integers(len(best)))])]

    def roll_out(self, node: Prefix) -> list[Choice]:
        """A complete architecture below ``node``, drawn by the rollout policy."""
        values = list(node)
        while len(values) < len(self.space.slots):
            choices = self.candidates(tuple(values))
            if self.agent.rollout == "architecture":
                weights = np.array([self.remaining((*values, c)) for c in choices], dtype=float)
                pick = int(self.rng.choice(len(choices), p=weights / weights.sum()))
            else:
                pick = int(self.rng.integers(len(choices)))
            values.append(choices[pick])
        return values

    def remaining(self, prefix: Prefix) -> int:
        """Completions of ``prefix`` not yet evaluated (all of them, in repeats)."""
        count = self.space.completions(prefix)
        return count if self.repeats else count - self.distinct.get(prefix, 0)

    def record(self, values: list[Choice], reward: float, path: list[Prefix]) -> None:
        """Count a new architecture below each of its prefixes; back the reward up the path."""
        arch = tuple(values)
        if arch not in self.evaluated:
            self.evaluated.add(arch)
            for depth in range(len(arch) + 1):
                self.distinct[arch[:depth]] = self.distinct.get(arch[:depth], 0) + 1
        self.low, self.high = min(self.low, reward), max(self.high, reward)
        for node in path:
            self.visits[node] += 1
            self.total[node] += reward
