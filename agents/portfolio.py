"""A portfolio: the architectures that did best on other training tasks' tables, tried first.

The warm start of hyperparameter optimisation from related datasets (Feurer et al. 2015,
"Initializing Bayesian Hyperparameter Optimization via Meta-Learning"; Pfisterer et al. 2018,
"Learning Multiple Defaults for Machine Learning Algorithms"), without any learning on the
searched task."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from agents.base import Agent
from agents.runner import SearchRunner
from nasenv.data import TRAINING_TASKS
from nasenv.space import Architecture
from nasenv.table import BenchmarkTable, load_table, shipped_tables


def portfolio(tables: Mapping[str, BenchmarkTable], metric: str = "recall") -> tuple[str, ...]:
    """Every architecture of ``tables`` (tables of one space), best first by its mean rank over
    the tables' seed-mean validation ``metric``. Ranks, not scores, are averaged, so a task with
    a wider spread of scores weighs no more than the others; ties keep the tables' order."""
    if not tables:
        raise ValueError("tables is empty; give at least one task's table")
    names = list(tables)
    archs = tables[names[0]].arch_strings
    for name in names[1:]:
        if tables[name].arch_strings != archs:
            raise ValueError(f"the {name} table holds other architectures than {names[0]}'s")
    ranks = np.zeros(len(archs))
    for table in tables.values():
        order = np.argsort(-table.scores(metric), kind="stable")
        ranks[order] += np.arange(len(archs))
    return tuple(archs[i] for i in np.argsort(ranks, kind="stable"))


@dataclass
class Portfolio(Agent):
    """Evaluates architectures in a fixed order learned on other (training) tasks, best first,
    skipping those outside the searched space, then searches at random when the order runs out.

    Args:
        tasks: ``""``: every training task (:data:`nasenv.data.TRAINING_TASKS`) with a shipped
            table except the searched one gives the order (:func:`portfolio`); or the
            comma-separated tasks whose shipped tables do. With the default, on a held-out or new
            task, or with live training, the search starts from what the training tables know. A
            held-out task (:data:`nasenv.data.HELD_OUT_TASKS`) never enters the default order:
            transfer to those is what ``benchmarks/transfer.py`` measures.
        architectures: the order itself (canonical strings), which overrides ``tasks``; not a
            hyperparameter, left out of reports.

    Every evaluation counts, as for any agent; the order never adapts to the searched task's
    rewards. It is not in the leaderboard of searches from scratch (``run_agents.py``): it
    transfers from other tasks, and ``benchmarks/transfer.py`` measures it as such.
    """

    name: ClassVar[str] = "portfolio"
    seed: int = 0
    tasks: str = ""
    architectures: tuple[str, ...] = field(default=(), repr=False)

    def order(self, searched: str | None = None) -> tuple[str, ...]:
        """The architectures in the order this agent tries them on the task ``searched``."""
        if self.architectures:
            return self.architectures
        if self.tasks:
            tables = {name: load_table(name.strip()) for name in self.tasks.split(",")}
        else:
            tables = shipped_tables(exclude=searched, tasks=TRAINING_TASKS)
        if not tables:
            raise ValueError(
                f"no shipped table of a training task {list(TRAINING_TASKS)} other than "
                f"{searched!r} to rank from"
            )
        return portfolio(tables)

    def search(self, runner: SearchRunner) -> None:
        for text in self.order(runner.dataset):
            if runner.exhausted:
                return
            arch = Architecture.from_string(text)
            if arch in runner.space:
                runner.evaluate(arch)
        rng = np.random.default_rng(self.seed)
        while not runner.exhausted:
            runner.evaluate(runner.space.sample(rng))
