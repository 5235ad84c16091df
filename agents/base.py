"""What every agent is: a seeded object with documented hyperparameters that searches through a
:class:`~agents.runner.SearchRunner` until its budget is spent.

Agents that can propose an evaluation before the results of earlier ones are known are also
:class:`AskTellAgent`: their :meth:`~AskTellAgent.proposer` asks and tells one evaluation at a
time, as Optuna's ``study.ask`` / ``study.tell`` do. Their sequential :meth:`~Agent.search` is
that loop with one evaluation at a time, and :mod:`agents.parallel` runs the same proposer with
``N`` evaluations in flight (simulated workers on the table, real processes on the live back
end).
"""

from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from agents.runner import SearchRunner, Trial
from nasenv.space import Architecture, Choice, SearchSpace


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


@dataclass(frozen=True)
class Proposal:
    """One evaluation an agent asks for.

    Args:
        arch: the architecture, or its decision values.
        fidelity: ``(max_epochs, patience)`` of a reduced budget (``None``: the env's own), as
            :meth:`agents.runner.SearchRunner.evaluate` takes it.
        tag: the agent's own bookkeeping (an Optuna trial, a rung), handed back with the result.
    """

    arch: Architecture | Sequence[Choice]
    fidelity: tuple[int, int] | None = None
    tag: Any = None


class Proposer(Protocol):
    """The ask/tell half of an agent, bound to one search (see :class:`AskTellAgent`)."""

    def ask(self) -> Proposal | None:
        """The next evaluation to start; ``None``: nothing until a running one is told (with
        none running: nothing more at all, the search is over)."""
        ...

    def tell(self, proposal: Proposal, trial: Trial) -> None:
        """The result of an evaluation ``ask`` proposed (in the order they finish)."""
        ...


class AskTellAgent(Agent):
    """An agent that proposes evaluations without waiting for the results of earlier ones.

    Subclasses implement :meth:`proposer`. The sequential :meth:`search` asks, evaluates and
    tells one evaluation at a time; :func:`agents.parallel.run_parallel` keeps ``N`` in flight
    with the same proposer, so one code path serves both and one worker reproduces the
    sequential search exactly.
    """

    @abstractmethod
    def proposer(self, runner: SearchRunner) -> AbstractContextManager[Proposer]:
        """A context that yields this search's :class:`Proposer` and releases what it holds
        (an Optuna study's logging level) on exit."""

    def search(self, runner: SearchRunner) -> None:
        with self.proposer(runner) as proposer:
            while not runner.exhausted:
                proposal = proposer.ask()
                if proposal is None:
                    return  # nothing more to propose
                trial = runner.evaluate(proposal.arch, fidelity=proposal.fidelity)
                proposer.tell(proposal, trial)


def valid_choices(space: SearchSpace, prefix: list[Choice]) -> list[Choice]:
    """The choices of slot ``len(prefix)`` that may follow ``prefix`` in ``space``."""
    slot = space.slots[len(prefix)]
    return [c for c, ok in zip(slot.choices, space.mask(prefix), strict=True) if ok]


def mutate(arch: Architecture, space: SearchSpace, rng: np.random.Generator) -> Architecture:
    """``arch`` with one decision changed to another valid value; later decisions that the change
    made invalid are redrawn uniformly among the valid ones, so the result is always in ``space``
    and always differs from ``arch``."""
    values = list(space.decisions(arch))
    n_slots = len(space.slots)
    mutable = [s for s in range(n_slots) if len(valid_choices(space, values[:s])) > 1]
    slot = int(rng.choice(mutable))
    others = [c for c in valid_choices(space, values[:slot]) if c != values[slot]]
    values[slot] = others[int(rng.integers(len(others)))]
    for later in range(slot + 1, n_slots):
        allowed = valid_choices(space, values[:later])
        if values[later] not in allowed:
            values[later] = allowed[int(rng.integers(len(allowed)))]
    return space.from_decisions(values)


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
