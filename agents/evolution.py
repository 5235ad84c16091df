"""Regularized evolution (Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search"): an aging population, tournament selection and one-decision mutations.

It is asynchronous by design (Real et al. ran it on hundreds of workers): every ask draws a
random architecture while fewer than ``population_size`` results are in, and afterwards mutates
the winner of a tournament among the results in; every result joins the population and the
oldest member leaves. With one evaluation at a time this is the sequential algorithm exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from agents.base import AskTellAgent, Proposal, mutate
from agents.runner import SearchRunner, Trial
from nasenv.space import Architecture, SearchSpace


@dataclass
class RegularizedEvolution(AskTellAgent):
    """Aging evolution.

    Args:
        population_size: 10, the architectures alive at once (NAS-Bench-201's REA setting, Dong &
            Yang 2020, for budgets of a few hundred evaluations; Real et al. used 100 for 20k).
        sample_size: 3, the tournament size (NAS-Bench-201; Real et al. used 25 of 100).
    """

    name: ClassVar[str] = "evolution"
    seed: int = 0
    population_size: int = 10
    sample_size: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.sample_size <= self.population_size:
            raise ValueError(
                f"need 1 <= sample_size ({self.sample_size}) <= population_size "
                f"({self.population_size})"
            )

    @contextmanager
    def proposer(self, runner: SearchRunner) -> Iterator[_EvolutionProposer]:
        yield _EvolutionProposer(self, runner.space, np.random.default_rng(self.seed))


class _EvolutionProposer:
    """The population of results in, oldest first."""

    def __init__(
        self, agent: RegularizedEvolution, space: SearchSpace, rng: np.random.Generator
    ) -> None:
        self.agent, self.space, self.rng = agent, space, rng
        self.population: deque[tuple[Architecture, float]] = deque()

    def ask(self) -> Proposal:
        if len(self.population) < self.agent.population_size:
            return Proposal(self.space.sample(self.rng))
        picks = self.rng.choice(len(self.population), size=self.agent.sample_size, replace=False)
        parent = max((self.population[int(i)] for i in picks), key=lambda member: member[1])[0]
        return Proposal(mutate(parent, self.space, self.rng))

    def tell(self, proposal: Proposal, trial: Trial) -> None:
        arch = proposal.arch
        assert isinstance(arch, Architecture)  # this proposer asks for architectures only
        self.population.append((arch, trial.reward))
        if len(self.population) > self.agent.population_size:
            self.population.popleft()  # the oldest dies, however good
