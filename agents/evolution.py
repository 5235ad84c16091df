"""Regularized evolution (Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search"): an aging population, tournament selection and one-decision mutations."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from agents.base import Agent, mutate
from agents.runner import SearchRunner
from nasenv.space import Architecture


@dataclass
class RegularizedEvolution(Agent):
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

    def search(self, runner: SearchRunner) -> None:
        rng = np.random.default_rng(self.seed)
        population: deque[tuple[Architecture, float]] = deque()
        while not runner.exhausted and len(population) < self.population_size:
            arch = runner.space.sample(rng)
            population.append((arch, runner.evaluate(arch).reward))
        while not runner.exhausted:
            picks = rng.choice(len(population), size=self.sample_size, replace=False)
            parent = max((population[int(i)] for i in picks), key=lambda member: member[1])[0]
            child = mutate(parent, runner.space, rng)
            population.append((child, runner.evaluate(child).reward))
            population.popleft()  # the oldest dies, however good
