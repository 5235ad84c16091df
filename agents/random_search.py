"""Random search: architectures drawn uniformly from the space, the baseline every NAS method
must beat (Li & Talwalkar 2019, "Random Search and Reproducibility for NAS")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from agents.base import AskTellAgent, Proposal
from agents.runner import SearchRunner, Trial
from nasenv.space import SearchSpace


@dataclass
class RandomSearch(AskTellAgent):
    """Uniform sampling over the space's architectures (with repeats, like any i.i.d. draw)."""

    name: ClassVar[str] = "random"
    seed: int = 0

    @contextmanager
    def proposer(self, runner: SearchRunner) -> Iterator[_RandomProposer]:
        yield _RandomProposer(runner.space, np.random.default_rng(self.seed))


class _RandomProposer:
    """Draws an architecture at every ask; results change nothing."""

    def __init__(self, space: SearchSpace, rng: np.random.Generator) -> None:
        self.space, self.rng = space, rng

    def ask(self) -> Proposal:
        return Proposal(self.space.sample(self.rng))

    def tell(self, proposal: Proposal, trial: Trial) -> None:
        pass
