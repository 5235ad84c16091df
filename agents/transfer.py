"""Transfer of a search policy across book tasks: the REINFORCE controller learns on a set of
training tasks, then searches a new task starting from what it learned.

Architecture quality is correlated across related datasets (NAS-Bench-Graph measured this for
node classification), so a controller that has concentrated on good decisions elsewhere may need
fewer evaluations on a new task. Two ways of using it on the new task:

* ``fine_tune=True``: the usual REINFORCE updates continue from the pretrained weights (the
  baseline restarts from the new task's first batch, as reward scales differ between tasks);
* ``fine_tune=False``: the policy is frozen (learning rate 0) and only sampled.

The baseline any learned transfer has to beat is :class:`Portfolio`: no policy at all, only the
training tasks' tables read as a ranking. It evaluates the architectures in the order of their mean
rank over the training tasks (:func:`portfolio`), best first, the warm start of hyperparameter
optimisation from related datasets (Feurer et al. 2015, "Initializing Bayesian Hyperparameter
Optimization via Meta-Learning"; Pfisterer et al. 2018, "Learning Multiple Defaults for Machine
Learning Algorithms"). It needs every training task tabulated; the controller needs only samples.

A transferred controller may also get a smaller ``tanh_constant`` than it was pretrained with
(e.g. ``transferred(weights, tanh_constant=1.0)``): its logits keep their order but are bounded
more tightly, a flatter prior that explores more on a task unlike the training tasks.

    env = TaskSetEnv(TRAINING_TASKS, seed_policy="random")
    weights = pretrain(env, evaluations=2000, seed=0)
    result = run_search(transferred(weights, seed=0), gym.make("RecNAS-Books-v0",
                        dataset="Books-Canada-5core"), Budget(100))

Pretraining episodes come from the training tasks only; nothing of the new task is seen before its
own search, whose every evaluation counts in its budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from agents.base import Agent
from agents.reinforce import Reinforce
from agents.runner import Budget, SearchRunner, run_search
from nasenv.space import Architecture
from nasenv.table import BenchmarkTable


def pretrain(
    env: gym.Env, evaluations: int, seed: int = 0, **hyperparameters: Any
) -> dict[str, torch.Tensor]:
    """Weights of a REINFORCE controller trained for ``evaluations`` architectures on ``env``
    (typically a :class:`~nasenv.tasks.TaskSetEnv` of training tasks)."""
    agent = Reinforce(seed=seed, **hyperparameters)
    run_search(agent, env, Budget(evaluations), seed)
    if agent.weights is None:
        raise RuntimeError("the search ended before the controller was built")
    return agent.weights


def transferred(
    weights: dict[str, torch.Tensor], seed: int = 0, fine_tune: bool = True, **hyperparameters: Any
) -> Reinforce:
    """A REINFORCE agent that starts from ``weights``; frozen unless ``fine_tune``."""
    if not fine_tune:
        hyperparameters["learning_rate"] = 0.0
    return Reinforce(seed=seed, initial_weights=weights, **hyperparameters)


def portfolio(tables: Mapping[str, BenchmarkTable], metric: str = "recall") -> tuple[str, ...]:
    """Every architecture of ``tables`` (tables of one space), best first by its mean rank over
    the tables' seed-mean validation ``metric``. Ranks, not scores, are averaged, so a task with
    a wider spread of scores weighs no more than the others; ties keep the tables' order."""
    if not tables:
        raise ValueError("tables is empty; give at least one training task's table")
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
    """Evaluates ``architectures`` in order (typically :func:`portfolio` of the training tasks),
    skipping those outside the searched space, then searches at random when the list runs out.

    Every evaluation counts, as for any agent; the list is fixed, so what it learned elsewhere
    never adapts to the new task's rewards."""

    name: ClassVar[str] = "portfolio"
    seed: int = 0
    architectures: tuple[str, ...] = field(default=(), repr=False)

    def search(self, runner: SearchRunner) -> None:
        for text in self.architectures:
            if runner.exhausted:
                return
            arch = Architecture.from_string(text)
            if arch in runner.space:
                runner.evaluate(arch)
        rng = np.random.default_rng(self.seed)
        while not runner.exhausted:
            runner.evaluate(runner.space.sample(rng))
