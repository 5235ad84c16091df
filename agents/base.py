"""What every agent is: a seeded object with documented hyperparameters that searches through a
:class:`~agents.runner.SearchRunner` until its budget is spent."""

from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np

from agents.runner import SearchRunner
from nasenv.space import SLOTS, Architecture, Choice, SearchSpace


class Agent(ABC):
    """Base class. Subclasses are dataclasses whose fields (except ``seed``) are their
    hyperparameters, each documented with its source."""

    name: ClassVar[str]
    seed: int

    @abstractmethod
    def search(self, runner: SearchRunner) -> None:
        """Evaluate architectures through ``runner`` until ``runner.exhausted``."""

    def hyperparameters(self) -> dict[str, Any]:
        """The dataclass fields but ``seed`` and those declared with ``repr=False`` (state such
        as transferred weights)."""
        if not dataclasses.is_dataclass(self):
            return {}
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "seed" and f.repr
        }


def valid_choices(space: SearchSpace, prefix: list[Choice]) -> list[Choice]:
    """The choices of slot ``len(prefix)`` that may follow ``prefix`` in ``space``."""
    slot = SLOTS[len(prefix)]
    return [c for c, ok in zip(slot.choices, space.mask(prefix), strict=True) if ok]


def mutate(arch: Architecture, space: SearchSpace, rng: np.random.Generator) -> Architecture:
    """``arch`` with one decision changed to another valid value; later decisions that the change
    made invalid are redrawn uniformly among the valid ones, so the result is always in ``space``
    and always differs from ``arch``."""
    values = list(arch.decisions())
    mutable = [s for s in range(len(SLOTS)) if len(valid_choices(space, values[:s])) > 1]
    slot = int(rng.choice(mutable))
    others = [c for c in valid_choices(space, values[:slot]) if c != values[slot]]
    values[slot] = others[int(rng.integers(len(others)))]
    for later in range(slot + 1, len(SLOTS)):
        allowed = valid_choices(space, values[:later])
        if values[later] not in allowed:
            values[later] = allowed[int(rng.integers(len(allowed)))]
    return Architecture.from_decisions(values)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the previous count (also when the block
    raises). The count is process-wide: other threads of the process see it while the block runs.

    The controllers and policies of the RL agents are a few thousand parameters evaluated one
    step at a time: extra threads cannot speed such small operations up, and where cores are
    shared (parallel searches, a busy machine) their synchronisation made a search about eight
    times slower in our measurements.
    """
    import torch  # only the neural agents need it

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def restored_global_rngs() -> Iterator[None]:
    """Restore the global random states of Python's ``random``, NumPy and torch (the CPU
    generator; and every CUDA device's, where CUDA is initialised) afterwards, also when the
    block raises: for libraries that seed them, as Stable-Baselines3 does when built with a
    seed. Inside the block they are process-wide, as ever.
    """
    import torch

    python_state = random.getstate()
    numpy_state = np.random.get_state()  # noqa: NPY002 - the legacy global state, to restore
    cuda = range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=cuda, device_type="cuda"):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)  # noqa: NPY002
