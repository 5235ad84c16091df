"""Multi-objective RecNAS: ``RecNAS-Books-MO-v0``, its objectives, Pareto fronts and indicators.

The env follows MO-Gymnasium's conventions (``mo_gymnasium.make``, ``reward_space``,
``reward_dim``, a ``numpy`` float32 reward vector; its wrappers ``LinearReward`` and
``MORecordEpisodeStatistics`` and ``mo_gymnasium.wrappers.vector.MOSyncVectorEnv`` work on it)
without importing MO-Gymnasium: it is registered with Gymnasium like the other ids, so
``gym.make("RecNAS-Books-MO-v0")`` and ``mo_gymnasium.make("RecNAS-Books-MO-v0")`` both make it
(``pip install 'recnas-books[mo]'`` for MO-Gymnasium itself).

The objectives, every one *maximised* (:data:`OBJECTIVES`, the one place they are defined):

=================  ======================================  ==========================  ==========
name               raw value (``info["objectives"]``)      reward component            bounds
=================  ======================================  ==========================  ==========
``quality``        validation Recall@20 (``metric``), the  the raw value, clipped      [0, 1]
                   reward of ``RecNAS-Books-v0``
``train_seconds``  seconds of one training (the table's    ``-log10(clip(s, 1e-3,      [-6, 3]
                   cost; cost version 1 for the shipped    1e6))``
                   tables)
``inference_ms``   milliseconds to score every user        ``-log10(clip(ms, 1e-3,     [-6, 3]
                   against every item                      1e6))``
``n_params``       trainable parameters                    ``-log10(clip(n, 1,         [-12, 0]
                                                           1e12))``
=================  ======================================  ==========================  ==========

Why ``-log10`` with fixed clipping rather than a min-max over a table: the three costs are
positive and span orders of magnitude (0.2 to 190 training seconds, 12 to 3,700 ms and 56k to
1.3M parameters over the shipped tables), where ratios, not differences, are what matter; a fixed
transform gives every task, table rebuild and back end the same reward for the same measurement
(a min-max would change with the table, and has no meaning on the live back end); the clipping
ranges are decades beyond anything measured, so they only make ``reward_space`` a bounded Box and
never bind in practice. A missing (NaN) measurement counts as the worst value (the lower bound).

Hypervolumes of a table's architectures are measured from :func:`reference_point`, the worst
value of every objective over the table (every architecture weakly dominates it), never from
``reward_space.low``, whose volume is almost all empty space.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, SupportsFloat

import numpy as np
from gymnasium import spaces

from nasenv.env import RecNASEnv
from nasenv.evaluators import SurrogateEvaluator, TableEvaluator
from nasenv.space import Architecture
from nasenv.table import BenchmarkTable, FidelityLike

MO_ENV_ID = "RecNAS-Books-MO-v0"


def _identity(value: float) -> float:
    return value


def _neg_log10(value: float) -> float:
    return -math.log10(value)


@dataclass(frozen=True)
class Objective:
    """One objective: its raw measurement, clipped to ``[raw_low, raw_high]`` and mapped by
    ``transform`` (``"identity"`` or ``"-log10"``) to a reward component that is larger when
    better. A NaN measurement counts as the worst raw value of the range."""

    name: str
    description: str
    raw_low: float
    raw_high: float
    transform: str
    higher_is_better: bool

    @property
    def _function(self) -> Callable[[float], float]:
        return _identity if self.transform == "identity" else _neg_log10

    def value(self, raw: float) -> float:
        """The reward component of the measurement ``raw`` (float64)."""
        raw = float(raw)
        if math.isnan(raw):
            raw = self.raw_low if self.higher_is_better else self.raw_high
        return self._function(min(max(raw, self.raw_low), self.raw_high))

    @property
    def bounds(self) -> tuple[float, float]:
        """``(low, high)`` of the reward component."""
        ends = sorted((self._function(self.raw_low), self._function(self.raw_high)))
        return ends[0] + 0.0, ends[1] + 0.0  # + 0.0: no negative zero


OBJECTIVES: tuple[Objective, ...] = (
    Objective(
        "quality",
        "validation Recall@20 (NDCG@20 with metric='ndcg'): the reward of RecNAS-Books-v0",
        0.0,
        1.0,
        "identity",
        True,
    ),
    Objective(
        "train_seconds",
        "wall seconds of one training up to its stopping epoch (the table's cost_seconds)",
        1e-3,
        1e6,
        "-log10",
        False,
    ),
    Objective(
        "inference_ms",
        "milliseconds to score every user against every item",
        1e-3,
        1e6,
        "-log10",
        False,
    ),
    Objective("n_params", "trainable parameters", 1.0, 1e12, "-log10", False),
)
"""The objectives, in reward-vector order (see the module docstring)."""

OBJECTIVE_NAMES: tuple[str, ...] = tuple(o.name for o in OBJECTIVES)
REWARD_LOW = np.array([o.bounds[0] for o in OBJECTIVES], dtype=np.float32)
REWARD_HIGH = np.array([o.bounds[1] for o in OBJECTIVES], dtype=np.float32)


def objective_indices(names: Sequence[str] | None) -> list[int]:
    """Positions in :data:`OBJECTIVES` of the objectives ``names`` (default: all, in order).

    Raises:
        ValueError: an unknown or repeated name, or none (the message names what is allowed).
    """
    if names is None:
        return list(range(len(OBJECTIVES)))
    if isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name not in OBJECTIVE_NAMES]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(
            f"objectives must be distinct names of {list(OBJECTIVE_NAMES)}, got {list(names)}"
        )
    return [OBJECTIVE_NAMES.index(name) for name in names]


def objective_vector(raw: Mapping[str, float]) -> np.ndarray:
    """The ``(4,)`` float64 objective vector of raw measurements keyed by :data:`OBJECTIVE_NAMES`
    (the env's reward is this vector as float32)."""
    return np.array([o.value(raw[o.name]) for o in OBJECTIVES], dtype=np.float64)


def table_objectives(
    table: BenchmarkTable, metric: str = "recall", fidelity: FidelityLike = None
) -> np.ndarray:
    """``(A, 4)`` float64 objective vectors of every architecture of ``table``, from seed means
    of its measurements (quality and training seconds under ``fidelity``)."""
    raw = {
        "quality": table.scores(metric, "mean", fidelity),
        "train_seconds": table.costs("mean", fidelity),
        "inference_ms": np.asarray(table.arrays["inference_ms"], np.float64).mean(axis=1),
        "n_params": np.asarray(table.arrays["n_params"], np.float64),
    }
    return np.array(
        [objective_vector({name: raw[name][i] for name in raw}) for i in range(len(table))]
    )


def reference_point(objectives: np.ndarray) -> np.ndarray:
    """The hypervolume reference of a table: the worst value of every objective over its
    architectures (``objectives`` from :func:`table_objectives`)."""
    return np.asarray(objectives, np.float64).min(axis=0)


# -- Pareto fronts and indicators ------------------------------------------------------------------


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the points (rows, maximised) that no other point dominates: weakly
    better in every objective and strictly in one. Equal points do not dominate each other, so
    all copies of a non-dominated vector are kept."""
    p = np.asarray(points, np.float64)
    if len(p) == 0:
        return np.zeros(0, bool)
    keep = np.ones(len(p), bool)
    for start in range(0, len(p), 256):  # blocks: memory O(256 n d)
        block = p[start : start + 256]
        geq = np.all(p[None, :, :] >= block[:, None, :], axis=2)
        gt = np.any(p[None, :, :] > block[:, None, :], axis=2)
        keep[start : start + len(block)] = ~np.any(geq & gt, axis=1)
    return keep


@dataclass(frozen=True)
class ParetoFront:
    """The exact Pareto front of a table: ``rows`` (table rows, ascending) and their ``points``
    (``(F, 4)`` objective vectors, :func:`table_objectives`)."""

    rows: np.ndarray
    points: np.ndarray


def pareto_front(
    table: BenchmarkTable,
    metric: str = "recall",
    fidelity: FidelityLike = None,
    objectives: Sequence[str] | None = None,
) -> ParetoFront:
    """Every architecture of ``table`` that no other dominates in the seed-mean objectives
    (ties: architectures with equal vectors are all on the front); ``objectives``: a subset of
    :data:`OBJECTIVE_NAMES` (default all), whose columns alone ``points`` then holds."""
    points = table_objectives(table, metric, fidelity)[:, objective_indices(objectives)]
    rows = np.flatnonzero(non_dominated(points))
    return ParetoFront(rows=rows, points=points[rows])


def _hv2(points: np.ndarray, ref: np.ndarray) -> float:
    order = np.argsort(-points[:, 0], kind="stable")
    x, y = points[order, 0], points[order, 1]
    gaps = x - np.append(x[1:], ref[0])
    return float(gaps @ (np.maximum.accumulate(y) - ref[1]))


def _hv3(points: np.ndarray, ref: np.ndarray) -> float:
    """Slices along z, every slice's 2-D volume at once: ``M[k, i]`` says whether the ``i``-th
    point in descending x is among the ``k + 1`` highest in z."""
    by_z = np.argsort(-points[:, 2], kind="stable")
    z = points[by_z, 2]
    z_gaps = z - np.append(z[1:], ref[2])
    z_rank = np.empty(len(points), np.int64)
    z_rank[by_z] = np.arange(len(points))
    by_x = np.argsort(-points[:, 0], kind="stable")
    x, y = points[by_x, 0], points[by_x, 1]
    x_gaps = x - np.append(x[1:], ref[0])
    included = z_rank[by_x][None, :] <= np.arange(len(points))[:, None]
    heights = np.maximum.accumulate(np.where(included, y[None, :], ref[1]), axis=1) - ref[1]
    return float(z_gaps @ (heights @ x_gaps))


def _hv(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume by slicing along the last objective (HSO, While et al. 2006) down to the
    vectorised 3-D and 2-D sweeps; ``points`` all strictly better than ``ref``."""
    d = points.shape[1]
    if d == 1:
        return float(points[:, 0].max() - ref[0])
    if d == 2:
        return _hv2(points, ref)
    if d == 3:
        return _hv3(points, ref)
    order = np.argsort(-points[:, -1], kind="stable")
    points = points[order]
    last = points[:, -1]
    gaps = last - np.append(last[1:], ref[-1])
    total = 0.0
    for k in np.flatnonzero(gaps > 0):
        prefix = points[: k + 1, :-1]
        prefix = prefix[non_dominated(prefix)]
        total += float(gaps[k]) * _hv(prefix, ref[:-1])
    return total


def hypervolume(points: np.ndarray | Sequence[Sequence[float]], reference: np.ndarray) -> float:
    """Exact hypervolume (Lebesgue measure) of the region that ``points`` (rows, maximised)
    dominate and that dominates ``reference``, in any dimension (exact slicing, see
    :func:`_hv`; fast for fronts of a few hundred points in 4-D). Points not strictly better than
    ``reference`` in every objective add nothing; no points: 0."""
    ref = np.asarray(reference, np.float64)
    p = np.asarray(points, np.float64).reshape(-1, len(ref))
    p = p[(p > ref).all(axis=1)]
    if len(p) == 0:
        return 0.0
    p = np.unique(p, axis=0)
    return _hv(p[non_dominated(p)], ref)


def igd(
    points: np.ndarray | Sequence[Sequence[float]],
    front: np.ndarray,
    scale: np.ndarray | None = None,
) -> float:
    """Inverted generational distance: the mean, over the ``front``'s points, of the Euclidean
    distance to the nearest of ``points`` (0 when ``points`` hold the front), after dividing
    every objective by ``scale`` (e.g. its range over the table; default 1). No points: inf."""
    f = np.asarray(front, np.float64)
    p = np.asarray(points, np.float64).reshape(-1, f.shape[1])
    if len(p) == 0:
        return math.inf
    s = np.ones(f.shape[1]) if scale is None else np.asarray(scale, np.float64)
    distances = np.linalg.norm((f[:, None, :] - p[None, :, :]) / s, axis=2)
    return float(distances.min(axis=1).mean())


# -- the environment -------------------------------------------------------------------------------


class RecNASMOEnv(RecNASEnv):
    """``RecNAS-Books-v0`` with a vector reward (MO-Gymnasium's conventions).

    Everything of :class:`~nasenv.env.RecNASEnv` is unchanged (actions, masks, observations,
    seed policies, back ends, arguments) but the reward:

    * ``reward_space``: ``Box(REWARD_LOW, REWARD_HIGH, (4,), float32)`` =
      ``[0, -6, -6, -12]`` to ``[1, 3, 3, 0]``, and ``reward_dim = 4``; with
      ``objectives=("quality", "train_seconds")`` (any distinct names of
      :data:`OBJECTIVE_NAMES`, in the order given) only those components, and their bounds;
    * the reward of every step is a float32 array of :data:`OBJECTIVES` (module docstring):
      zeros for every decision but the last; at the last, the objective vector of the evaluated
      architecture for the evaluation's training seed (``quality`` is v0's reward). Under the
      ``mean`` seed policy the raw values are seed means (``train_seconds`` is one training's
      mean, while ``info["cost_seconds"]`` stays what the evaluation costs, the sum);
    * an invalid action under ``invalid_action="penalize"`` ends the episode with
      ``reward_space.low`` (the worst value of every objective); ``invalid_reward`` is not an
      argument here.

    ``info`` is v0's; the terminal step of an evaluated architecture adds ``objectives``, the raw
    values keyed by :data:`OBJECTIVE_NAMES`, and ``inference_ms``.

    Back ends: the table (any :class:`~nasenv.evaluators.TableEvaluator`) and live training,
    whose results hold every measurement; the surrogate predicts neither parameters nor latency
    and is refused.
    """

    def __init__(self, objectives: Sequence[str] | None = None, **kwargs: Any) -> None:
        self.objective_indices = objective_indices(objectives)
        """Positions in :data:`OBJECTIVES` of the reward's components (``objectives``: a subset
        of :data:`OBJECTIVE_NAMES`, in the order given; default all four)."""
        if "invalid_reward" in kwargs:
            raise TypeError(
                "RecNASMOEnv has no invalid_reward: an invalid action scores the "
                "lower bound of reward_space"
            )
        super().__init__(**kwargs)
        if isinstance(self.evaluator, SurrogateEvaluator) or not (
            isinstance(self.evaluator, TableEvaluator) or hasattr(self.evaluator, "result")
        ):
            raise ValueError(
                f"{MO_ENV_ID} needs an evaluator that measures parameters and inference latency "
                f"(the table or live back end), not {self.evaluator!r}"
            )
        low, high = REWARD_LOW[self.objective_indices], REWARD_HIGH[self.objective_indices]
        self.reward_space = spaces.Box(low, high, dtype=np.float32)
        self.reward_dim = len(self.objective_indices)
        self.invalid_reward = math.nan  # never returned: see invalid_vector
        self.invalid_vector = low.copy()
        self.invalid_vector.setflags(write=False)

    def _inference_ms(self, arch: Architecture, seeds: Sequence[int]) -> float:
        evaluator: Any = self.evaluator
        measured = self.last_evaluation.inference_ms if self.last_evaluation else math.nan
        if math.isfinite(measured):  # what the evaluation itself reported
            return measured
        if isinstance(evaluator, TableEvaluator):
            table, fidelity = evaluator.table, evaluator.fidelity
            values = [table.query(arch, s, fidelity).inference_ms for s in seeds]
        else:  # a live evaluator: its (cached) training results
            values = [float(evaluator.result(arch, s).inference_ms) for s in seeds]
        return float(np.mean(values))

    def step(self, action: int) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        if info.get("invalid_action"):
            return obs, self.invalid_vector.copy(), terminated, truncated, info
        if not terminated:
            return obs, np.zeros(self.reward_dim, np.float32), terminated, truncated, info
        assert self.last_arch is not None
        seeds = list(self.seeds) if info["seed"] is None else [int(info["seed"])]
        raw = {
            "quality": float(reward),
            "train_seconds": float(info["cost_seconds"]) / len(seeds),
            "inference_ms": self._inference_ms(self.last_arch, seeds),
            "n_params": float(info["n_params"]),
        }
        info["objectives"] = raw
        info["inference_ms"] = raw["inference_ms"]
        vector = objective_vector(raw)[self.objective_indices]
        return obs, vector.astype(np.float32), terminated, truncated, info
