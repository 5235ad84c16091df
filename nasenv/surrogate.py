"""A surrogate benchmark: validation scores predicted for any architecture of the full space.

Model: kernel ridge regression on the architectures' decisions with the kernel
``exp(-gamma * d(a, b))``, where ``d`` counts the slots on which two architectures differ
(numerical slots - dim, lr, reg - also contribute their distance on a log scale). Such a kernel
needs no feature engineering, fits a few thousand architectures in a second with numpy alone, and
its predictions depend on the architectures most alike the query. ``gamma`` and the ridge
penalty are chosen by K-fold cross-validation on Kendall's tau.

A :class:`Surrogate` also predicts the training seconds (same model on log seconds), and draws
each evaluation's noise from a normal distribution with the standard deviation measured between
the seeds of the benchmark table, seeded by (architecture, seed) so that a query is reproducible.
It is saved as an ``.npz`` without pickle.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasenv.data import read_npz, write_npz
from nasenv.space import SLOTS, Architecture

FORMAT_VERSION = 1
_NUMERIC = {"dim", "lr", "reg"}


def encode(archs: Sequence[Architecture]) -> np.ndarray:
    """``(n, len(SLOTS))`` codes: the choice index of categorical slots, a log value of numeric
    ones (``reg = 0`` counts as 1e-6)."""
    out = np.empty((len(archs), len(SLOTS)))
    for i, arch in enumerate(archs):
        for j, (slot, value) in enumerate(zip(SLOTS, arch.decisions())):
            if slot.name in _NUMERIC:
                out[i, j] = math.log2(max(float(value), 1e-6))
            else:
                out[i, j] = slot.choices.index(value)
    return out


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise distances between encoded architectures: mismatched categorical slots count 1,
    numeric slots their log2 distance divided by that slot's range."""
    numeric = np.array([slot.name in _NUMERIC for slot in SLOTS])
    span = np.ones(len(SLOTS))
    for j, slot in enumerate(SLOTS):
        if slot.name in _NUMERIC:
            logs = [math.log2(max(float(c), 1e-6)) for c in slot.choices]
            span[j] = max(logs) - min(logs) or 1.0
    diff = np.abs(a[:, None, :] - b[None, :, :])
    cost = np.where(numeric, diff / span, diff > 0)
    return cost.sum(axis=2)


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (no SciPy needed)."""
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    upper = np.triu_indices(len(x), 1)
    dx, dy = dx[upper], dy[upper]
    denominator = math.sqrt(float((dx != 0).sum()) * float((dy != 0).sum()))
    return float((dx * dy).sum() / denominator) if denominator else 0.0


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def _fit(d: np.ndarray, y: np.ndarray, gamma: float, ridge: float) -> np.ndarray:
    """Dual coefficients for the pairwise distances ``d`` of the training architectures."""
    return np.linalg.solve(np.exp(-gamma * d) + ridge * np.eye(len(y)), y - y.mean())


@dataclass(frozen=True)
class FitReport:
    """Cross-validated quality of the chosen hyperparameters."""

    gamma: float
    ridge: float
    kendall_tau: float
    spearman: float
    folds: int
    n: int


def select(
    d: np.ndarray,
    y: np.ndarray,
    gammas: Sequence[float] = (0.25, 0.5, 1.0, 2.0),
    ridges: Sequence[float] = (1e-2, 1e-1, 1.0, 10.0),
    folds: int = 5,
    seed: int = 0,
) -> FitReport:
    """Pick ``gamma`` and ``ridge`` by K-fold cross-validated Kendall tau; ``d`` holds the
    pairwise distances of the architectures scored ``y``."""
    order = np.random.default_rng(seed).permutation(len(y))
    parts = np.array_split(order, folds)
    best: FitReport | None = None
    for gamma, ridge in itertools.product(gammas, ridges):
        predicted = np.empty(len(y))
        for held in parts:
            train = np.setdiff1d(order, held)
            alpha = _fit(d[np.ix_(train, train)], y[train], gamma, ridge)
            kernel = np.exp(-gamma * d[np.ix_(held, train)])
            predicted[held] = kernel @ alpha + y[train].mean()
        report = FitReport(
            gamma, ridge, kendall_tau(predicted, y), spearman(predicted, y), folds, len(y)
        )
        if best is None or report.kendall_tau > best.kendall_tau:
            best = report
    assert best is not None
    return best


class Surrogate:
    """Predicted validation score and training seconds for any architecture.

    Build with :meth:`fit`; persist with :meth:`save` / :meth:`load`.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        if int(arrays["format_version"]) != FORMAT_VERSION:
            raise ValueError(f"surrogate format {int(arrays['format_version'])} is not supported")
        self.arrays = arrays
        self.meta = json.loads(str(arrays["meta"]))

    @classmethod
    def fit(
        cls,
        archs: Sequence[Architecture],
        scores: np.ndarray,
        seconds: np.ndarray,
        noise_std: float,
        meta: dict | None = None,
        folds: int = 5,
    ) -> tuple[Surrogate, FitReport]:
        """Fit on ``archs`` with their (seed-mean) validation ``scores`` and training ``seconds``.

        ``noise_std`` is the standard deviation between training seeds that evaluations draw.
        """
        codes = encode(archs)
        d = distances(codes, codes)
        scores, log_seconds = np.asarray(scores, float), np.log(np.asarray(seconds, float))
        report = select(d, scores, folds=folds)
        cost = select(d, log_seconds, folds=folds)
        arrays = {
            "format_version": np.array(FORMAT_VERSION),
            "meta": np.array(
                json.dumps({**(meta or {}), "fit": report.__dict__, "cost_fit": cost.__dict__})
            ),
            "codes": codes,
            "alpha": _fit(d, scores, report.gamma, report.ridge),
            "alpha_cost": _fit(d, log_seconds, cost.gamma, cost.ridge),
            "hyper": np.array(
                [report.gamma, scores.mean(), cost.gamma, log_seconds.mean(), noise_std]
            ),
        }
        return cls(arrays), report

    def predict(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted mean score and training seconds of ``archs``."""
        gamma, mean, gamma_cost, mean_cost, _ = self.arrays["hyper"]
        d = distances(encode(archs), self.arrays["codes"])
        score = np.exp(-gamma * d) @ self.arrays["alpha"] + mean
        log_seconds = np.exp(-gamma_cost * d) @ self.arrays["alpha_cost"] + mean_cost
        return score, np.exp(log_seconds)

    def sample(self, arch: Architecture, seed: int) -> tuple[float, float]:
        """One evaluation: the predicted score plus seed noise (reproducible per arch and seed)."""
        score, seconds = self.predict([arch])
        digest = hashlib.sha256(f"{arch.to_string()}|{seed}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        noise = float(self.arrays["hyper"][4]) * float(rng.standard_normal())
        return float(np.clip(score[0] + noise, 0.0, 1.0)), float(seconds[0])

    def save(self, path: str | Path) -> None:
        write_npz(Path(path), self.arrays)

    @classmethod
    def load(cls, path: str | Path) -> Surrogate:
        return cls(read_npz(Path(path)))
