"""Multi-fidelity agents: they choose each evaluation's training budget (issue 18).

Every agent here evaluates architectures at a few epoch budgets, the *rungs*, through
``runner.evaluate(arch, fidelity=(epochs, patience))``; promoting an architecture to a larger rung
resumes its earlier training (same seed, only the further seconds charged: see
:mod:`agents.runner`). The rungs are Hyperband's geometric grid below the env's own budget
``R`` (the table's 30 epochs): ``R * eta**-k`` rounded, no smaller than ``min_epochs``, with
the table's patience at every rung (``eta=3``, ``min_epochs=3``: 3, 10 and 30 epochs).

* :class:`SuccessiveHalving` (Jamieson & Talwalkar 2016, "Non-stochastic Best Arm
  Identification and Hyperparameter Optimization"): brackets of ``n`` random architectures at the
  lowest rung; the best ``1/eta`` go on to the next;
* :class:`Hyperband` (Li et al. 2017, "Hyperband: A Novel Bandit-Based Approach to
  Hyperparameter Optimization"): cycles through successive-halving brackets from the most
  exploratory to plain full-budget random search;
* :class:`ASHA` (Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning"):
  asynchronous successive halving, with one worker: promote whatever is in the top ``1/eta`` of
  its rung, else start a new architecture at the bottom;
* :class:`OptunaHyperband` (BOHB-style, Falkner et al. 2018, "BOHB: Robust and Efficient
  Hyperparameter Optimization at Scale"): Optuna's ``TPESampler`` with its ``HyperbandPruner``,
  the stored validation curve reported epoch by epoch.

Only full-budget trials are incumbents (:meth:`agents.runner.SearchRunner.best`). The agents are
kept out of :data:`agents.AGENTS`: the leaderboard (:mod:`agents.leaderboard`) values every
trial's reward as a potential incumbent and counts evaluations, not seconds, so it would score a
low-budget trial as a find. ``benchmarks/multifidelity.py`` scores them against simulated
seconds instead. :data:`MF_AGENTS` names them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np

from agents.base import Agent, AskTellAgent, Proposal
from agents.runner import SearchRunner, Trial
from agents.tpe import quiet_optuna, suggest_architecture, tpe_sampler
from nasenv.space import Architecture


def rungs(runner: SearchRunner, min_epochs: int, eta: int) -> list[tuple[int, int]]:
    """Hyperband's budgets below the env's own ``(R, patience)``: ``round(R * eta**-k)`` epochs
    for ``k = s_max .. 0``, ``s_max = floor(log_eta(R / min_epochs))``, smallest first.

    Raises:
        ValueError: not the table back end, ``eta < 2`` or ``min_epochs`` outside ``1..R``.
    """
    full = runner.full_fidelity
    if full is None:
        raise ValueError("multi-fidelity agents need the table back end (its stored curves)")
    epochs, patience = full
    if eta < 2:
        raise ValueError(f"eta must be >= 2, got {eta}")
    if not 1 <= min_epochs <= epochs:
        raise ValueError(f"min_epochs must be in 1..{epochs} (the env's budget), got {min_epochs}")
    s_max = math.floor(math.log(epochs / min_epochs, eta) + 1e-9)
    budgets = sorted(
        {max(min_epochs, round(epochs * eta ** (k - s_max))) for k in range(s_max + 1)}
    )
    return [(e, patience) for e in budgets]


def _sample(runner: SearchRunner, rng: np.random.Generator, n: int) -> list[Architecture]:
    """``n`` distinct random architectures (all of them if the space is smaller)."""
    space = runner.space
    rows = rng.choice(len(space), size=min(n, len(space)), replace=False)
    return [space[int(i)] for i in rows]


def _top(scored: list[tuple[Architecture, float]], k: int) -> list[Architecture]:
    """The ``k`` best by score (the earliest among ties)."""
    order = sorted(range(len(scored)), key=lambda i: (-scored[i][1], i))
    return [scored[i][0] for i in order[:k]]


def successive_halving(
    runner: SearchRunner,
    archs: list[Architecture],
    budgets: list[tuple[int, int]],
    eta: int,
) -> list[list[Trial]]:
    """One bracket: every architecture at ``budgets[0]``, the best ``floor(n / eta)`` (at least
    one) resumed at the next budget, and so on; the trials of each rung."""
    survivors, trials = list(archs), []
    for rung, budget in enumerate(budgets):
        fidelity = None if budget == runner.full_fidelity else budget
        done = [runner.evaluate(arch, fidelity=fidelity) for arch in survivors]
        trials.append(done)
        if rung + 1 < len(budgets):
            scored = [(arch, t.reward) for arch, t in zip(survivors, done, strict=True)]
            survivors = _top(scored, max(1, len(survivors) // eta))
    return trials


@dataclass
class SuccessiveHalving(Agent):
    """Successive halving over the epoch rungs, bracket after bracket until the budget is spent.

    Args:
        min_epochs: 3, the smallest rung (a tenth of the table's 30 epochs: the first rung of
            Hyperband with ``eta=3``, Li et al. 2017).
        eta: 3, the reduction factor (Li et al. 2017 and Falkner et al. 2018 use 3).
        n_configs: 9, architectures per bracket: ``eta ** s_max`` for 30 epochs from 3, the
            most exploratory bracket of Hyperband (Li et al. 2017, Algorithm 1).
    """

    name: ClassVar[str] = "successive-halving"
    seed: int = 0
    min_epochs: int = 3
    eta: int = 3
    n_configs: int = 9

    def search(self, runner: SearchRunner) -> None:
        if self.n_configs < 1:
            raise ValueError(f"n_configs must be >= 1, got {self.n_configs}")
        rng = np.random.default_rng(self.seed)
        budgets = rungs(runner, self.min_epochs, self.eta)
        while not runner.exhausted:
            successive_halving(runner, _sample(runner, rng, self.n_configs), budgets, self.eta)


@dataclass
class Hyperband(Agent):
    """Hyperband: successive-halving brackets ``s = s_max .. 0`` with ``ceil((s_max + 1) /
    (s + 1) * eta**s)`` architectures starting at rung ``s_max - s``, repeated until the budget
    is spent (the last bracket of a cycle is random search at the full budget).

    Args:
        min_epochs: 3, the smallest rung (see :class:`SuccessiveHalving`).
        eta: 3, the reduction factor (Li et al. 2017).
    """

    name: ClassVar[str] = "hyperband"
    seed: int = 0
    min_epochs: int = 3
    eta: int = 3

    def search(self, runner: SearchRunner) -> None:
        rng = np.random.default_rng(self.seed)
        budgets = rungs(runner, self.min_epochs, self.eta)
        s_max = len(budgets) - 1
        while not runner.exhausted:
            for s in range(s_max, -1, -1):
                n = math.ceil((s_max + 1) / (s + 1) * self.eta**s)
                successive_halving(runner, _sample(runner, rng, n), budgets[s_max - s :], self.eta)


@dataclass
class ASHA(AskTellAgent):
    """Asynchronous successive halving: each ask promotes the best not-yet-promoted
    architecture that is in the top ``floor(n / eta)`` of the ``n`` results at its rung
    (highest rung first), or else starts a new random one at the lowest rung. With one worker
    the results are in before every ask; with ``N`` (:mod:`agents.parallel`) an ask sees the
    results in so far, as in Li et al.'s Algorithm 2.

    Args:
        min_epochs: 3, the smallest rung (see :class:`SuccessiveHalving`).
        eta: 3, the reduction factor (Li et al. 2020).
    """

    name: ClassVar[str] = "asha"
    seed: int = 0
    min_epochs: int = 3
    eta: int = 3

    @contextmanager
    def proposer(self, runner: SearchRunner) -> Iterator[_ASHAProposer]:
        yield _ASHAProposer(self, runner, np.random.default_rng(self.seed))


class _ASHAProposer:
    """The results in at every rung, best first, and the architectures promoted from each."""

    def __init__(self, agent: ASHA, runner: SearchRunner, rng: np.random.Generator) -> None:
        self.eta, self.space, self.rng = agent.eta, runner.space, rng
        self.budgets = rungs(runner, agent.min_epochs, agent.eta)
        self.full = runner.full_fidelity
        # per rung, (-reward, arrival, name, architecture) kept sorted: the order of _top
        self.ranked: list[list[tuple[float, int, str, Architecture]]] = [[] for _ in self.budgets]
        self.promoted: list[set[str]] = [set() for _ in self.budgets]

    def ask(self) -> Proposal:
        arch, rung = self._next()
        budget = self.budgets[rung]
        return Proposal(arch, None if budget == self.full else budget, tag=rung)

    def tell(self, proposal: Proposal, trial: Trial) -> None:
        arch = proposal.arch
        assert isinstance(arch, Architecture)  # this proposer asks for architectures only
        ranked = self.ranked[proposal.tag]
        entry = (-trial.reward, len(ranked), arch.to_string(), arch)
        bisect.insort(ranked, entry, key=lambda e: e[:2])

    def _next(self) -> tuple[Architecture, int]:
        """The architecture to evaluate next and its rung."""
        for rung in range(len(self.ranked) - 2, -1, -1):
            ranked = self.ranked[rung]
            for _, _, name, arch in ranked[: len(ranked) // self.eta]:
                if name not in self.promoted[rung]:
                    self.promoted[rung].add(name)
                    return arch, rung + 1
        return self.space.sample(self.rng), 0


@dataclass
class OptunaHyperband(Agent):
    """Optuna's TPE sampler with its Hyperband pruner (BOHB-style), the stored curve replayed.

    Each Optuna trial suggests an architecture as :class:`agents.tpe.TPE` does and is evaluated
    at ``min_epochs`` (every trial reaches the pruner's first rung). Its seed's stored validation
    curve is then reported epoch by epoch, as the running best (the score a budget ending there
    would give), through ``trial.report(value, epoch)`` and ``trial.should_prune()``: the pruner
    sees epoch ``e`` only after epoch ``e``, so its decisions are those of a live run. The run is
    then resumed to the epoch where it was pruned (``fidelity=(epoch, patience)``, charging the
    seconds up to that epoch) or, not pruned, to the full budget, whose score is told to TPE.

    Args:
        min_epochs: 3, the pruner's ``min_resource`` (the smallest rung, see
            :class:`SuccessiveHalving`).
        eta: 3, the pruner's ``reduction_factor`` (Optuna's default, Li et al. 2017).
        n_startup_trials: 10, random architectures before TPE models the results (Optuna's
            default, as :class:`agents.tpe.TPE`).
    """

    name: ClassVar[str] = "optuna-hyperband"
    seed: int = 0
    min_epochs: int = 3
    eta: int = 3
    n_startup_trials: int = 10

    def search(self, runner: SearchRunner) -> None:
        budgets = rungs(runner, self.min_epochs, self.eta)
        full = cast(tuple[int, int], runner.full_fidelity)
        with quiet_optuna(self.name) as optuna:
            sampler = tpe_sampler(optuna, self.seed, self.n_startup_trials, multivariate=True)
            pruner = optuna.pruners.HyperbandPruner(
                min_resource=budgets[0][0], max_resource=full[0], reduction_factor=self.eta
            )
            # a fixed name: the pruner assigns brackets by a hash of the study's name
            study = optuna.create_study(
                direction="maximize", sampler=sampler, pruner=pruner, study_name="recnas"
            )
            while not runner.exhausted:
                trial = study.ask()
                values = suggest_architecture(trial, runner.space)
                first = runner.evaluate(values, fidelity=budgets[0] if budgets[0] != full else None)
                stop = self._replay(runner, trial, first, full)
                if stop is None:
                    done = first if first.full else runner.evaluate(values)
                    study.tell(trial, done.reward)
                else:
                    if stop > budgets[0][0] and not runner.exhausted:
                        runner.evaluate(values, fidelity=(stop, full[1]))
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)

    def _replay(
        self, runner: SearchRunner, trial: Any, first: Trial, full: tuple[int, int]
    ) -> int | None:
        """Report ``first``'s stored curve epoch by epoch; the pruned epoch (``None``: not
        pruned before the full budget's early stopping)."""
        curve = _curve(runner, first.arch, first.seed, full)
        best = -math.inf
        for epoch, value in enumerate(curve, start=1):
            best = max(best, value)
            trial.report(best, epoch)
            if epoch < len(curve) and trial.should_prune():
                return epoch
        return None


def _curve(runner: SearchRunner, arch: str, seed: int | None, full: tuple[int, int]) -> list[float]:
    """The validation curve (of the env's metric) that the full budget's training of ``(arch,
    seed)`` runs through, failed epochs 0 (the seed mean under the ``mean`` policy)."""
    env = runner.env.unwrapped
    table = env.evaluator.table  # type: ignore[attr-defined]
    seeds = list(env.seeds) if seed is None else [seed]  # type: ignore[attr-defined]
    metric = "val_" + str(getattr(env, "metric", "recall"))
    curves = []
    for s in seeds:
        result = table.result(arch, s).at_fidelity(*full)
        values = np.asarray(getattr(result, metric), dtype=float)
        curves.append(np.nan_to_num(values, nan=0.0) if result.ok else np.zeros_like(values))
    n = max(len(c) for c in curves)
    padded = [np.pad(c, (0, n - len(c)), mode="edge") if len(c) else np.zeros(n) for c in curves]
    return [float(v) for v in np.mean(padded, axis=0)]


MF_AGENTS: dict[str, type[Agent]] = {
    "successive-halving": SuccessiveHalving,
    "hyperband": Hyperband,
    "asha": ASHA,
    "optuna-hyperband": OptunaHyperband,
}
"""Multi-fidelity agent name -> class (kept apart from :data:`agents.AGENTS`: see above)."""
