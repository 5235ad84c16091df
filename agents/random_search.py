"""Random search: architectures drawn uniformly from the space, the baseline every NAS method
must beat (Li & Talwalkar 2019, "Random Search and Reproducibility for NAS")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from agents.base import Agent
from agents.runner import SearchRunner


@dataclass
class RandomSearch(Agent):
    """Uniform sampling over the space's architectures (with repeats, like any i.i.d. draw)."""

    name: ClassVar[str] = "random"
    seed: int = 0

    def search(self, runner: SearchRunner) -> None:
        rng = np.random.default_rng(self.seed)
        while not runner.exhausted:
            runner.evaluate(runner.space.sample(rng))
