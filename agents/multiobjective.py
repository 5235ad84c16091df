"""Multi-objective search agents for ``RecNAS-Books-MO-v0`` and the runner that records them.

:class:`MOSearchRunner` is a :class:`~agents.runner.SearchRunner` over the multi-objective env
(:mod:`nasenv.multiobjective`): the same budget rules (every evaluation counts, repeats included;
the last one may overshoot a seconds budget), and besides the single-objective
:attr:`~agents.runner.SearchRunner.history` (whose ``reward`` is the quality objective) it
records every evaluation's objective vector and simulated seconds in :attr:`MOSearchRunner.trials`.
Agents see what the env returns: the objective vector of one training seed.

Agents (:data:`MO_AGENTS`), all maximising the four objectives of
:data:`nasenv.multiobjective.OBJECTIVES`:

* ``mo-random``: uniform sampling over the space;
* ``nsga2``: Optuna's ``NSGAIISampler`` (Deb et al. 2002, "A Fast and Elitist Multiobjective
  Genetic Algorithm: NSGA-II");
* ``motpe``: Optuna's ``TPESampler`` with several directions (Ozaki et al. 2020, "Multiobjective
  Tree-Structured Parzen Estimator for Computationally Expensive Optimization Problems");
* ``mo-evolution``: NSGA-II's survival (non-dominated sorting, crowding distance, binary
  tournaments) over architectures, with the package's one-decision :func:`agents.base.mutate`
  as the only variation.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from agents.base import Agent, mutate
from agents.runner import Budget, BudgetExhausted, SearchRunner, Trial
from agents.tpe import quiet_optuna, suggest_architecture, tpe_sampler
from nasenv.multiobjective import OBJECTIVE_NAMES
from nasenv.space import Architecture


@dataclass(frozen=True)
class MOTrial:
    """One evaluated architecture: ``objectives`` is the env's reward vector (in
    :data:`~nasenv.multiobjective.OBJECTIVE_NAMES` order), ``raw`` its raw measurements
    (``info["objectives"]``); ``number`` counts evaluations from 1."""

    number: int
    arch: str
    objectives: tuple[float, ...]
    raw: dict[str, float]
    seed: int | None
    status: str
    cost_seconds: float
    total_seconds: float
    source: str | None = None


class MOSearchRunner(SearchRunner):
    """A ``RecNAS-Books-MO-v0`` env that records every evaluation (:attr:`trials`) and enforces a
    :class:`~agents.runner.Budget`."""

    def __init__(self, env: gym.Env, budget: Budget) -> None:
        super().__init__(env, budget)
        self.trials: list[MOTrial] = []

    def _scalar_reward(self, reward: Any) -> float:
        return float(np.asarray(reward)[0])  # quality: what the single-objective history ranks

    def _recorded(self, trial: Trial, reward: Any, info: dict[str, Any]) -> None:
        self.trials.append(
            MOTrial(
                number=trial.number,
                arch=trial.arch,
                objectives=tuple(float(v) for v in np.asarray(reward)),
                raw=dict(info["objectives"]),
                seed=trial.seed,
                status=trial.status,
                cost_seconds=trial.cost_seconds,
                total_seconds=trial.total_seconds,
                source=trial.source,
            )
        )

    def evaluate_mo(self, arch: Architecture | Sequence[Any]) -> MOTrial:
        """Play ``arch`` as one episode (:meth:`SearchRunner.evaluate`); its :class:`MOTrial`."""
        self.evaluate(arch)
        return self.trials[-1]


@dataclass
class MOSearchResult:
    """Every evaluation of one multi-objective search."""

    agent: str
    seed: int
    budget: Budget
    trials: list[MOTrial]
    wall_seconds: float
    invalid_episodes: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_mo_search(env: gym.Env, agent: Agent, budget: Budget, seed: int) -> MOSearchResult:
    """Search ``env`` (a ``RecNAS-Books-MO-v0``) with ``agent``, resetting it with ``seed``, until
    ``budget`` is spent."""
    runner = MOSearchRunner(env, budget)
    runner.reset(seed=seed)
    runner.action_space.seed(seed)
    start = time.perf_counter()
    with contextlib.suppress(BudgetExhausted):
        agent.search(runner)
    return MOSearchResult(
        agent=agent.name,
        seed=seed,
        budget=budget,
        trials=list(runner.trials),
        wall_seconds=time.perf_counter() - start,
        invalid_episodes=runner.invalid_episodes,
        hyperparameters=agent.hyperparameters(),
    )


def _runner(runner: SearchRunner) -> MOSearchRunner:
    if not isinstance(runner, MOSearchRunner):
        raise TypeError("multi-objective agents search through an MOSearchRunner")
    return runner


# -- agents ----------------------------------------------------------------------------------------


@dataclass
class MORandomSearch(Agent):
    """Uniform sampling over the space's architectures (with repeats)."""

    name: ClassVar[str] = "mo-random"
    seed: int = 0

    def search(self, runner: SearchRunner) -> None:
        mo = _runner(runner)
        rng = np.random.default_rng(self.seed)
        while not mo.exhausted:
            mo.evaluate_mo(mo.space.sample(rng))


def _optuna_search(runner: SearchRunner, sampler: Any, optuna: Any) -> None:
    mo = _runner(runner)
    study = optuna.create_study(directions=["maximize"] * len(OBJECTIVE_NAMES), sampler=sampler)
    while not mo.exhausted:
        trial = study.ask()
        study.tell(trial, list(mo.evaluate_mo(suggest_architecture(trial, mo.space)).objectives))


@dataclass
class NSGAII(Agent):
    """Optuna's NSGA-II sampler, asked and told one architecture at a time (Optuna's defaults).

    Parameters outside the intersection of the trials' search spaces (conditional slots) are
    drawn by Optuna's independent (random) sampler, as Optuna documents for this sampler.

    Args:
        population_size: 50, Optuna's default (6 generations in 300 evaluations).
        crossover_prob: 0.9, Optuna's default (Deb et al. 2002 used 0.9).
        swapping_prob: 0.5, Optuna's default for its uniform crossover.
        mutation_prob: ``None``: Optuna's default, ``1 / number of parameters``.
    """

    name: ClassVar[str] = "nsga2"
    seed: int = 0
    population_size: int = 50
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5
    mutation_prob: float | None = None

    def search(self, runner: SearchRunner) -> None:
        with quiet_optuna(self.name) as optuna:
            sampler = optuna.samplers.NSGAIISampler(
                population_size=self.population_size,
                crossover_prob=self.crossover_prob,
                swapping_prob=self.swapping_prob,
                mutation_prob=self.mutation_prob,
                seed=self.seed,
            )
            _optuna_search(runner, sampler, optuna)


@dataclass
class MOTPE(Agent):
    """Optuna's TPE sampler with four directions (multi-objective TPE, Ozaki et al. 2020 and
    2022): the good group is chosen by non-dominated rank and hypervolume contribution.

    Args:
        n_startup_trials: 10, random architectures first (Optuna's default).
        multivariate: ``True``, with ``group=True``: as :class:`agents.tpe.TPE` (Optuna
            recommends it for dependent parameters).
    """

    name: ClassVar[str] = "motpe"
    seed: int = 0
    n_startup_trials: int = 10
    multivariate: bool = True

    def search(self, runner: SearchRunner) -> None:
        with quiet_optuna(self.name) as optuna:
            sampler = tpe_sampler(optuna, self.seed, self.n_startup_trials, self.multivariate)
            _optuna_search(runner, sampler, optuna)


def non_dominated_ranks(points: np.ndarray) -> np.ndarray:
    """Rank of every point (rows, maximised) in fast non-dominated sorting (Deb et al. 2002):
    0 for the non-dominated, 1 for those only the rank-0 points dominate, ..."""
    p = np.asarray(points, np.float64)
    geq = np.all(p[:, None, :] >= p[None, :, :], axis=2)
    gt = np.any(p[:, None, :] > p[None, :, :], axis=2)
    dominates: np.ndarray = np.asarray(geq & gt)  # [i, j]: i dominates j
    count = dominates.sum(axis=0)
    ranks = np.full(len(p), -1, np.int64)
    rank, current = 0, np.flatnonzero(count == 0)
    while len(current):
        ranks[current] = rank
        count = count - dominates[current].sum(axis=0)
        count[ranks >= 0] = -1
        current = np.flatnonzero(count == 0)
        rank += 1
    return ranks


def crowding_distances(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of every point within its set (boundary points: inf)."""
    p = np.asarray(points, np.float64)
    n = len(p)
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for m in range(p.shape[1]):
        order = np.argsort(p[:, m], kind="stable")
        span = p[order[-1], m] - p[order[0], m]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (p[order[2:], m] - p[order[:-2], m]) / span
    return distance


@dataclass
class MOEvolution(Agent):
    """NSGA-II over architectures (Deb et al. 2002), mutation only: a random initial population;
    each generation ``population_size`` children, each a :func:`~agents.base.mutate` of a binary
    tournament winner (lower rank, then larger crowding distance), and the next population the
    best ``population_size`` of parents and children by rank, then crowding distance.

    Args:
        population_size: 20: 15 generations in 300 evaluations (Deb et al. used 100 for 25,000
            evaluations; a budget of a few hundred needs a smaller one, as the regularized
            evolution's 10 of NAS-Bench-201, Dong & Yang 2020).
    """

    name: ClassVar[str] = "mo-evolution"
    seed: int = 0
    population_size: int = 20

    def __post_init__(self) -> None:
        if self.population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {self.population_size}")

    def search(self, runner: SearchRunner) -> None:
        mo = _runner(runner)
        rng = np.random.default_rng(self.seed)
        archs: list[Architecture] = []
        points: list[tuple[float, ...]] = []
        while not mo.exhausted and len(archs) < self.population_size:
            arch = mo.space.sample(rng)
            archs.append(arch)
            points.append(mo.evaluate_mo(arch).objectives)
        while not mo.exhausted:
            current = np.array(points)
            ranks, crowding = non_dominated_ranks(current), crowding_distances_by_rank(current)
            children: list[Architecture] = []
            child_points: list[tuple[float, ...]] = []
            for _ in range(self.population_size):
                if mo.exhausted:
                    break
                a, b = (int(i) for i in rng.choice(len(archs), size=2, replace=False))
                key_a, key_b = (ranks[a], -crowding[a]), (ranks[b], -crowding[b])
                parent = archs[a] if key_a <= key_b else archs[b]
                child = mutate(parent, mo.space, rng)
                children.append(child)
                child_points.append(mo.evaluate_mo(child).objectives)
            archs, points = archs + children, points + child_points
            merged = np.array(points)
            ranks, crowding = non_dominated_ranks(merged), crowding_distances_by_rank(merged)
            keep = np.lexsort((-crowding, ranks))[: self.population_size]
            archs, points = [archs[int(i)] for i in keep], [points[int(i)] for i in keep]


def crowding_distances_by_rank(points: np.ndarray) -> np.ndarray:
    """Crowding distance of every point within its own non-dominated rank."""
    ranks = non_dominated_ranks(points)
    distance = np.zeros(len(points))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        distance[members] = crowding_distances(points[members])
    return distance


MO_AGENTS: dict[str, type[Agent]] = {
    "mo-random": MORandomSearch,
    "nsga2": NSGAII,
    "motpe": MOTPE,
    "mo-evolution": MOEvolution,
}
"""Multi-objective agent name -> class (kept apart from :data:`agents.AGENTS`, whose agents
search the scalar-reward ids)."""

MO_REQUIREMENTS: dict[str, tuple[str, ...]] = {"nsga2": ("optuna",), "motpe": ("optuna",)}
"""Agents that need optional packages (the ``rl`` extra)."""


@dataclass
class LinearPPO(Agent):
    """The scalarised route: sb3-contrib's ``MaskablePPO`` (:class:`agents.ppo.MaskablePPOAgent`,
    its hyperparameters and defaults) on MO-Gymnasium's ``LinearReward`` of the env, whose reward
    is ``weights @ reward vector``. Needs the ``rl`` and ``mo`` extras.

    Args:
        weights: the scalarisation, in :data:`~nasenv.multiobjective.OBJECTIVE_NAMES` order.
            Default ``(1, 0.05, 0.05, 0.05)``: on Books-20core the table's range of quality
            (0.07) and of each cost objective times 0.05 (0.02 to 0.06) are alike.
    """

    name: ClassVar[str] = "ppo-linear"
    seed: int = 0
    weights: tuple[float, ...] = (1.0, 0.05, 0.05, 0.05)

    def search(self, runner: SearchRunner) -> None:
        import importlib

        from agents.ppo import TOTAL_TIMESTEPS, MaskablePPO, MaskablePPOAgent, StopWhenSpent

        mo = _runner(runner)
        try:
            wrappers = importlib.import_module("mo_gymnasium.wrappers")
        except ImportError as error:
            message = "ppo-linear needs MO-Gymnasium: pip install 'recnas-books[mo]'"
            raise ImportError(message) from error
        from agents.base import restored_global_rngs, single_threaded

        scalar = wrappers.LinearReward(mo, weight=np.asarray(self.weights, np.float32))
        kwargs = MaskablePPOAgent(seed=self.seed)._ppo_kwargs()
        with single_threaded(), restored_global_rngs():
            model = MaskablePPO("MlpPolicy", scalar, **kwargs)
            model.learn(TOTAL_TIMESTEPS, callback=StopWhenSpent(mo))
