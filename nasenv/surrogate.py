"""A surrogate benchmark: validation scores predicted for any architecture of the full space.

Model: kernel ridge regression on the architectures' decisions with the kernel
``exp(-gamma * d(a, b))``, where ``d`` counts the slots on which two architectures differ
(numerical slots - dim, lr, reg - also contribute their distance on a log scale). Such a kernel
needs no feature engineering, fits a few thousand architectures in a second with numpy alone, and
its predictions depend on the architectures most alike the query. The ridge penalty of each
architecture is divided by its number of training seeds, so a table entry (a mean over seeds)
counts as the less noisy measurement it is. ``gamma`` and the ridge penalty are chosen by K-fold
cross-validated Kendall tau, scored on every architecture or (``select_on_outside``) on the
trainings outside the table only; on Books-20core both pick alike and extrapolate alike
(``benchmarks/RESULTS.md``), so the simpler one is the default.

A :class:`Surrogate` also predicts an evaluation's cost (same model on log seconds, of the cost
version of its training data, :attr:`Surrogate.cost_version`), and draws
each evaluation's noise from a normal distribution with the standard deviation measured between
training seeds (on architectures outside the table trained twice, where there are enough of them;
else between the table's seeds), seeded by (architecture, seed) so that a query is reproducible.
It is saved as an ``.npz`` without pickle.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasenv import predictors
from nasenv.data import DEFAULT_DATASET, get_spec, read_listed, read_npz, verify_file, write_npz
from nasenv.predictors import encode
from nasenv.results import COST_VERSION, FAILED_SCORE, METRICS, TOP_K, TrainResult
from nasenv.space import SLOTS, Architecture
from nasenv.table import TABLE_DIR, BenchmarkTable

FORMAT_VERSION = 3
"""The format :meth:`Surrogate.fit` writes for ``model="ard+rankmlp"``; ``"ard+mlp"`` writes
format 2 and ``model="kernel"`` format 1, each of which loads as it always did
(``RecNAS-Books-Surrogate-v1``'s and ``-v0``'s files)."""
FORMATS = (1, 2, 3)
MODELS = ("kernel", "ard+mlp", "ard+rankmlp")
"""``kernel``: the version 0 model (one ``gamma``); ``ard+mlp``: the version 1 model, the mean
of an ARD kernel ridge and an MLP; ``ard+rankmlp``: the version 2 model, the ARD kernel ridge
blended with a ranking MLP (:data:`RANK_BLEND`; :mod:`nasenv.predictors`)."""
SURROGATE_VERSIONS = (0, 1, 2, 3)
"""The shipped surrogates of a task: version 0 (``RecNAS-Books-Surrogate-v0``, ``kernel`` on
530 trainings outside the table), version 1 (``RecNAS-Books-Surrogate-v1``, ``ard+mlp`` on
2,656), version 2 (``RecNAS-Books-Surrogate-v2``, ``ard+rankmlp`` on the same 2,656) and
version 3 (``RecNAS-Books-Surrogate-v3``, ``ard+rankmlp`` on those plus a third draw of 600)."""
VERSION_MODELS = {0: "kernel", 1: "ard+mlp", 2: "ard+rankmlp", 3: "ard+rankmlp"}
"""The model of each of :data:`SURROGATE_VERSIONS`."""
_DRAW0 = "Books-20core-full-sample500-no-core"
_DRAW1 = "Books-20core-full-sample2000-draw1-no-core"
_DRAW2 = "Books-20core-full-sample600-draw2-no-core"
VERSION_BUILDS = {
    0: (_DRAW0, f"{_DRAW0}-seed1"),
    1: (_DRAW0, f"{_DRAW0}-seed1", _DRAW1),
    2: (_DRAW0, f"{_DRAW0}-seed1", _DRAW1),
    3: (_DRAW0, f"{_DRAW0}-seed1", _DRAW1, _DRAW2),
}
"""The table builds (directories of ``benchmarks/table-build``) whose trainings outside the
table each of :data:`SURROGATE_VERSIONS` was fitted on, beside the table's seed means: the
full-space draws outside the core and a second seed of the first. Version 0 used the first 30 of
those second seeds; that build has grown since."""
RANK_BLEND = 0.7
"""``ard+rankmlp``'s weight on the ranking MLP (the ARD kernel ridge gets the rest), chosen on
the first five hold-out splits of ``benchmarks/surrogate_models.py`` and confirmed on five
others (``benchmarks/RESULTS.md``)."""
_FORMAT_MODELS = {1: "kernel", 2: "ard+mlp", 3: "ard+rankmlp"}
_NUMERIC = set(predictors.NUMERIC_SLOTS)


def _span(slot_name: str, choices: Sequence[Any]) -> float:
    if slot_name not in _NUMERIC:
        return 1.0
    logs = [math.log2(max(float(c), 1e-6)) for c in choices]
    return max(logs) - min(logs) or 1.0


_IS_NUMERIC = np.array([slot.name in _NUMERIC for slot in SLOTS])
_SPANS = np.array([_span(slot.name, slot.choices) for slot in SLOTS])


def _split(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Categorical codes (int8) and numeric codes divided by their slot's range."""
    return codes[:, ~_IS_NUMERIC].astype(np.int8), codes[:, _IS_NUMERIC] / _SPANS[_IS_NUMERIC]


def _split_distances(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    mismatches = (a[0][:, None, :] != b[0][None, :, :]).sum(axis=2)
    return mismatches + np.abs(a[1][:, None, :] - b[1][None, :, :]).sum(axis=2)


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise distances between encoded architectures: mismatched categorical slots count 1,
    numeric slots their log2 distance divided by that slot's range."""
    return _split_distances(_split(a), _split(b))


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (no SciPy needed)."""
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    upper = np.triu_indices(len(x), 1)
    dx, dy = dx[upper], dy[upper]
    denominator = math.sqrt(float((dx != 0).sum()) * float((dy != 0).sum()))
    return float((dx * dy).sum() / denominator) if denominator else 0.0


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, tied values sharing the mean of their ranks (SciPy's ``rankdata``)."""
    _, inverse, counts = np.unique(np.asarray(x), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # the last rank of each distinct value
    return ((ends - (counts - 1) / 2.0)[inverse]).astype(float)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks (ties handled as SciPy)."""
    return float(np.corrcoef(average_ranks(x), average_ranks(y))[0, 1])


def _fit(d: np.ndarray, y: np.ndarray, gamma: float, ridge: float, seeds: np.ndarray) -> np.ndarray:
    """Dual coefficients for the pairwise distances ``d`` of the training architectures, each
    measured as the mean of ``seeds`` trainings (its ridge penalty is divided by that count)."""
    return np.linalg.solve(np.exp(-gamma * d) + np.diag(ridge / seeds), y - y.mean())


@dataclass(frozen=True)
class FitReport:
    """Cross-validated quality of the chosen hyperparameters, scored on ``n`` architectures."""

    gamma: float
    ridge: float
    kendall_tau: float
    spearman: float
    folds: int
    n: int


def select(
    d: np.ndarray,
    y: np.ndarray,
    seeds: np.ndarray | None = None,
    score_on: Sequence[int] | np.ndarray | None = None,
    gammas: Sequence[float] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
    ridges: Sequence[float] = (1e-3, 1e-2, 3e-2, 1e-1, 1.0, 10.0),
    folds: int = 5,
    seed: int = 0,
) -> FitReport:
    """Pick ``gamma`` and ``ridge`` by K-fold cross-validated Kendall tau.

    ``d`` holds the pairwise distances of the architectures scored ``y``, each the mean of
    ``seeds`` trainings (default 1). The folds split ``score_on`` (default: every architecture);
    each fold is predicted from all the other architectures, and only those predictions count.
    """
    seeds = np.ones(len(y)) if seeds is None else np.asarray(seeds, float)
    pool = np.arange(len(y)) if score_on is None else np.asarray(score_on, int)
    if len(pool) < folds:
        raise ValueError(f"need at least {folds} architectures to score {folds} folds on")
    order = np.random.default_rng(seed).permutation(pool)
    parts = np.array_split(order, folds)
    measured = y[np.concatenate(parts)]
    best: FitReport | None = None
    for gamma, ridge in itertools.product(gammas, ridges):
        predicted = []
        for held in parts:
            train = np.setdiff1d(np.arange(len(y)), held)
            alpha = _fit(d[np.ix_(train, train)], y[train], gamma, ridge, seeds[train])
            kernel = np.exp(-gamma * d[np.ix_(held, train)])
            predicted.append(kernel @ alpha + y[train].mean())
        joined = np.concatenate(predicted)
        report = FitReport(
            gamma,
            ridge,
            kendall_tau(joined, measured),
            spearman(joined, measured),
            folds,
            len(pool),
        )
        if best is None or report.kendall_tau > best.kendall_tau:
            best = report
    assert best is not None
    return best


TARGETS = ("val_recall", "val_ndcg", "test_recall", "test_ndcg", "log_seconds")
"""What a surrogate is fitted on: seed-mean validation and test metrics, and the log of an
evaluation's cost seconds."""

SECONDS = "seconds"
"""The name under which :meth:`Surrogate.predict` and :meth:`Surrogate.sample` answer the cost
in seconds (``exp`` of the ``log_seconds`` model)."""


class Surrogate:
    """Predicted metrics and training seconds for any architecture (one model per target).

    Build with :meth:`fit`; persist with :meth:`save` / :meth:`load`. Test predictions exist for
    reporting a search's result; they are fitted separately and never enter a validation score.

    File format (``.npz``, :data:`FORMAT_VERSION`): ``format_version``; ``codes`` ``(n, 12)``,
    the training architectures as :func:`encode` writes them; per target ``t``, ``alpha_t``
    ``(n,)`` dual coefficients and ``hyper_t`` = ``[gamma, mean of t, seed noise std]``; ``meta``,
    a JSON string with the fit's data sources, hyperparameter reports, held-out quality and
    ``cost_version`` (absent: 1). Format 2 (``model="ard+mlp"``) adds, per target, ``weights_t``
    (one ARD weight per slot, in place of ``gamma``, which is then NaN) and the networks
    ``mlp_t_*`` (:func:`nasenv.predictors.fit_mlp`); a prediction is the mean of the two.
    Format 3 (``model="ard+rankmlp"``) holds the same arrays, its networks from
    :func:`nasenv.predictors.fit_rank_mlp`, and ``blend_t``, the network's weight in the
    prediction (:data:`RANK_BLEND`).
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        if int(arrays["format_version"]) not in FORMATS:
            raise ValueError(
                f"surrogate format {int(arrays['format_version'])} is not supported; "
                f"allowed: {list(FORMATS)}"
            )
        self.arrays = arrays
        self.meta = json.loads(str(arrays["meta"]))
        self._split = _split(arrays["codes"])  # once: distances_to runs on every evaluation
        self._model = _FORMAT_MODELS[int(arrays["format_version"])]
        self._networks = {
            name: predictors.networks(arrays, f"mlp_{name}_")
            for name in TARGETS
            if f"mlp_{name}_scale" in arrays
        }

    @classmethod
    def fit(
        cls,
        archs: Sequence[Architecture],
        targets: Mapping[str, np.ndarray],
        noise_std: float | Mapping[str, float],
        meta: dict | None = None,
        folds: int = 5,
        seeds: Sequence[float] | np.ndarray | None = None,
        score_on: Sequence[int] | np.ndarray | None = None,
        model: str = "kernel",
    ) -> tuple[Surrogate, dict[str, FitReport]]:
        """Fit one model per entry of ``targets`` (keys from :data:`TARGETS`, each ``(n,)``).

        Args:
            noise_std: the standard deviation between training seeds that evaluations draw: one
                value for every validation target, or one per target (absent targets: 0).
            seeds: how many training seeds each architecture's values average (default 1).
            score_on: the architectures whose cross-validated predictions choose the
                hyperparameters (default: all), e.g. the trainings outside a table
                (``model="kernel"``).
            model: one of :data:`MODELS`. ``"ard+mlp"`` and ``"ard+rankmlp"`` need SciPy,
                scikit-learn (and torch, ``"ard+rankmlp"``); their
                reports hold the marginal-likelihood fit (``kendall_tau`` and ``spearman`` NaN,
                ``ridge`` the noise variance over the signal variance, ``gamma`` the mean
                weight).
        """
        if model not in MODELS:
            raise ValueError(f"unknown surrogate model {model!r}; allowed: {list(MODELS)}")
        unknown = sorted(set(targets) - set(TARGETS))
        if unknown:
            raise ValueError(f"unknown targets {unknown}; allowed: {list(TARGETS)}")
        if isinstance(noise_std, Mapping):
            noise = dict(noise_std)
        else:
            noise = {name: float(noise_std) for name in ("val_recall", "val_ndcg")}
        counts = np.ones(len(archs)) if seeds is None else np.asarray(seeds, float)
        if counts.shape != (len(archs),) or (counts < 1).any():
            raise ValueError(f"seeds must hold one count >= 1 per architecture ({len(archs)})")
        codes = encode(archs)
        if model != "kernel":
            return cls._fit_ard_mlp(archs, codes, targets, noise, counts, meta, model)
        d = distances(codes, codes)
        arrays: dict[str, np.ndarray] = {"format_version": np.array(1), "codes": codes}
        reports = {}
        for name, values in targets.items():
            y = np.asarray(values, float)
            report = select(d, y, counts, score_on, folds=folds)
            reports[name] = report
            arrays[f"alpha_{name}"] = _fit(d, y, report.gamma, report.ridge, counts)
            arrays[f"hyper_{name}"] = np.array([report.gamma, y.mean(), noise.get(name, 0.0)])
        fits = {name: r.__dict__ for name, r in reports.items()}
        arrays["meta"] = np.array(json.dumps({**(meta or {}), "fits": fits}, sort_keys=True))
        return cls(arrays), reports

    @classmethod
    def _fit_ard_mlp(
        cls,
        archs: Sequence[Architecture],
        codes: np.ndarray,
        targets: Mapping[str, np.ndarray],
        noise: Mapping[str, float],
        counts: np.ndarray,
        meta: dict | None,
        model: str,
    ) -> tuple[Surrogate, dict[str, FitReport]]:
        split = _split(codes)
        ranking = model == "ard+rankmlp"
        fit_network = predictors.fit_rank_mlp if ranking else predictors.fit_mlp
        d = predictors.slot_distances(split, split)
        x = predictors.features_from_codes(codes)
        version = 3 if ranking else 2
        arrays: dict[str, np.ndarray] = {"format_version": np.array(version), "codes": codes}
        reports, noise_fits = {}, {}
        for name, values in targets.items():
            y = np.asarray(values, float)
            weights, signal, variance = predictors.fit_ard(d, y - y.mean(), counts)
            arrays[f"alpha_{name}"] = predictors.ard_alpha(
                d, y - y.mean(), counts, weights, signal, variance
            )
            arrays[f"weights_{name}"] = weights
            arrays[f"hyper_{name}"] = np.array([math.nan, y.mean(), noise.get(name, 0.0)])
            for key, value in fit_network(x, y).items():
                arrays[f"mlp_{name}_{key[4:]}"] = value
            if ranking:
                arrays[f"blend_{name}"] = np.array(RANK_BLEND)
            reports[name] = FitReport(
                float(weights.mean()), variance / signal, math.nan, math.nan, 0, len(y)
            )
            noise_fits[name] = {
                "weights": dict(zip([slot.name for slot in SLOTS], weights.tolist(), strict=True)),
                "signal_std": math.sqrt(signal),
                "noise_std": math.sqrt(variance),
            }
        fits = {name: json_safe(r.__dict__) for name, r in reports.items()}
        document = {**(meta or {}), "fits": fits, "ard": noise_fits, "model": model}
        arrays["meta"] = np.array(json.dumps(document, sort_keys=True))
        return cls(arrays), reports

    @property
    def model(self) -> str:
        """Which of :data:`MODELS` answers (format 1: ``kernel``)."""
        return self._model

    def _values(self, fitted: str, d: np.ndarray, codes: np.ndarray,
                kernels: dict[Any, np.ndarray]) -> np.ndarray:  # fmt: skip
        """Predictions of the ``fitted`` target's model for the architectures encoded ``codes``,
        from their distances to the training architectures ``d`` (format 1: ``(m, n)``; format
        2: per slot), reusing the kernels of ``kernels`` (keyed by ``gamma``; format 2: the
        network inputs, ``"x"``)."""
        gamma, mean, _ = (float(v) for v in self.arrays[f"hyper_{fitted}"])
        alpha = self.arrays[f"alpha_{fitted}"]
        if self.model == "kernel":
            if gamma not in kernels:
                kernels[gamma] = np.exp(-gamma * d)
            return kernels[gamma] @ alpha + mean
        kernel = np.exp(-predictors.weighted(d, self.arrays[f"weights_{fitted}"]))
        if "x" not in kernels:
            kernels["x"] = predictors.features_from_codes(codes)
        network = predictors.mlp_forward(self._networks[fitted], kernels["x"])
        if self.model == "ard+mlp":  # format 2's own arithmetic: its answers stay bit for bit
            return (kernel @ alpha + mean + network) / 2.0
        blend = float(self.arrays[f"blend_{fitted}"])
        return (1.0 - blend) * (kernel @ alpha + mean) + blend * network

    def components(self, archs: Sequence[Architecture], target: str = "val_recall") -> dict:
        """Formats 2 and 3: the two predictions whose mean (format 3: blend) :meth:`predict`
        answers for a fitted ``target``, ``{"ard": ..., "mlp": ...}``."""
        if self.model == "kernel":
            raise ValueError("a 'kernel' surrogate has no components; 'ard+mlp' has")
        fitted = self._check(target)
        if fitted != target:
            raise ValueError(f"components answer fitted targets only, not {target!r}")
        codes = encode(archs)
        query = self._distances(codes)
        kernel = np.exp(-predictors.weighted(query, self.arrays[f"weights_{fitted}"]))
        ard = kernel @ self.arrays[f"alpha_{fitted}"] + float(self.arrays[f"hyper_{fitted}"][1])
        x = predictors.features_from_codes(codes)
        return {"ard": ard, "mlp": predictors.mlp_forward(self._networks[fitted], x)}

    def noise_std(self, target: str = "val_recall") -> float:
        """Standard deviation of the seed noise that :meth:`sample` adds to ``target``."""
        self._check(target)
        return float(self.arrays[f"hyper_{target}"][2])

    @property
    def cost_version(self) -> int:
        """The cost definition of the predicted seconds (:data:`nasenv.results.COST_VERSION`)."""
        return int(self.meta.get("cost_version", 1))

    def _check(self, target: str) -> str:
        """The fitted model that answers ``target`` (``seconds``: ``log_seconds``)."""
        fitted = "log_seconds" if target == SECONDS else target
        if fitted not in self.targets:
            allowed = self.targets + ([SECONDS] if "log_seconds" in self.targets else [])
            raise ValueError(f"target {target!r} was not fitted; allowed: {allowed}")
        return fitted

    @property
    def targets(self) -> list[str]:
        return [name for name in TARGETS if f"alpha_{name}" in self.arrays]

    def predict(self, archs: Sequence[Architecture], target: str = "val_recall") -> np.ndarray:
        """Predicted ``target`` of ``archs``: a fitted target, or :data:`SECONDS` (the cost in
        seconds, where ``log_seconds`` is its log)."""
        fitted = self._check(target)
        codes = encode(archs)
        values = self._values(fitted, self._distances(codes), codes, {})
        return np.exp(values) if target == SECONDS else values

    def distances_to(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Distances of ``archs`` to the training architectures (as :func:`distances`; format
        2: per slot, ``(len(SLOTS), len(archs), n)``, as
        :func:`nasenv.predictors.slot_distances`)."""
        return self._distances(encode(archs))

    def _distances(self, codes: np.ndarray) -> np.ndarray:
        if self.model == "kernel":
            return _split_distances(_split(codes), self._split)
        return predictors.slot_distances(_split(codes), self._split)

    def sample(
        self,
        arch: Architecture,
        seed: int,
        targets: Sequence[str] = ("val_recall", "val_ndcg", SECONDS),
    ) -> dict[str, float]:
        """One evaluation of ``arch`` with training seed ``seed``: each metric's prediction plus
        seed noise (clipped to [0, 1]), and :data:`SECONDS` or ``log_seconds`` without noise;
        reproducible per (arch, seed). Every target draws the same standard normal, so the metrics'
        noise is correlated, as it is between the metrics of one training."""
        fitted = {target: self._check(target) for target in targets}
        codes = encode([arch])
        d = self._distances(codes)
        d = d[0] if self.model == "kernel" else d  # one query: a vector product, as ever
        z = standard_normal(f"{arch.to_string()}|{seed}")
        kernels: dict[Any, np.ndarray] = {}
        out = {}
        for target in targets:
            noise = float(self.arrays[f"hyper_{fitted[target]}"][2])
            value = float(np.ravel(self._values(fitted[target], d, codes, kernels))[0])
            if target == SECONDS:
                out[target] = math.exp(value)
            elif target == "log_seconds":
                out[target] = value
            else:
                out[target] = min(max(value + noise * z, 0.0), 1.0)
        return out

    def save(self, path: str | Path) -> None:
        write_npz(Path(path), self.arrays)

    @classmethod
    def load(cls, path: str | Path, sha256: str | None = None) -> Surrogate:
        """Read a saved surrogate (pickle disabled), first checking its SHA-256 if given."""
        path = Path(path)
        if sha256 is not None:
            verify_file(path, sha256, "Reinstall the package or re-run scripts/fit_surrogate.py.")
        return cls(read_npz(path))


def json_safe(report: Mapping[str, Any]) -> dict[str, Any]:
    """``report`` with NaN values as ``None``, for strict JSON readers."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in report.items()}


def standard_normal(key: str) -> float:
    """A standard normal draw determined by ``key`` (Box-Muller on two 32-bit words of its
    SHA-256): reproducible across processes, and cheaper than seeding a generator per draw."""
    digest = hashlib.sha256(key.encode()).digest()
    u1 = (int.from_bytes(digest[:4], "little") + 1) / 2**32  # in (0, 1]
    u2 = int.from_bytes(digest[4:8], "little") / 2**32
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def surrogate_filename(dataset: str, version: int = 0) -> str:
    """``Books-20core`` -> ``books-20core-surrogate.npz`` (version 0) or
    ``books-20core-surrogate-v1.npz`` (version 1)."""
    if version not in SURROGATE_VERSIONS:
        raise ValueError(
            f"unknown surrogate version {version!r}; allowed: {list(SURROGATE_VERSIONS)}"
        )
    suffix = f"-v{version}" if version else ""
    return f"{get_spec(dataset).slug}-surrogate{suffix}.npz"


def load_surrogate(
    dataset: str = DEFAULT_DATASET, directory: str | Path | None = None, version: int = 0
) -> Surrogate:
    """Load the shipped surrogate ``version`` (:data:`SURROGATE_VERSIONS`) of ``dataset``,
    verified against ``SHA256SUMS``.

    Raises:
        ValueError: unknown dataset or version.
        FileNotFoundError: no surrogate was fitted for it.
        ChecksumError: the file's SHA-256 differs from the recorded one.
    """
    how = (
        "train its data with scripts/build_table.py --space full --sample 500 --exclude core "
        "--seeds 0, then fit it with scripts/fit_surrogate.py"
    )
    directory = Path(directory) if directory else TABLE_DIR
    arrays, _ = read_listed(directory, surrogate_filename(dataset, version), "surrogate", how)
    return Surrogate(arrays)


@dataclass(frozen=True)
class SurrogateData:
    """What a surrogate is fitted on: architectures, their targets (keys from :data:`TARGETS`),
    how many seeds each value averages, the seed noise per validation target, and the indices of
    the trainings outside the table. ``select_on_outside``: those trainings alone choose the
    hyperparameters (when at least one per fold remains). ``cost_version``: the cost definition
    of ``log_seconds``, recorded in the fitted surrogate's ``meta``."""

    archs: list[Architecture]
    targets: dict[str, np.ndarray]
    seeds: np.ndarray
    noise_std: dict[str, float]
    outside: np.ndarray
    select_on_outside: bool = False
    cost_version: int = COST_VERSION

    def __len__(self) -> int:
        return len(self.archs)

    def fit(
        self,
        indices: Sequence[int] | np.ndarray | None = None,
        targets: Sequence[str] | None = None,
        **kw: Any,
    ) -> tuple[Surrogate, dict[str, FitReport]]:
        """:meth:`Surrogate.fit` on the architectures ``indices`` (default all) and ``targets``
        (default all); ``kw``: its ``meta`` (``cost_version`` is added), ``folds`` and
        ``model``."""
        keep = np.arange(len(self)) if indices is None else np.asarray(indices, int)
        names = list(self.targets) if targets is None else list(targets)
        positions = np.flatnonzero(np.isin(keep, self.outside))
        enough = self.select_on_outside and len(positions) >= kw.get("folds", 5)
        return Surrogate.fit(
            [self.archs[i] for i in keep],
            {name: self.targets[name][keep] for name in names},
            self.noise_std,
            seeds=self.seeds[keep],
            score_on=positions if enough else None,
            **{**kw, "meta": {**(kw.get("meta") or {}), "cost_version": self.cost_version}},
        )


def training_data(table: BenchmarkTable, extra: Iterable[TrainResult] = ()) -> SurrogateData:
    """Every table entry (seed means) plus ``extra`` trainings (e.g. outside the table's space);
    the seeds of an extra architecture trained more than once are averaged. Their seconds are
    taken under the table's cost version (``TrainResult.with_cost_version``; ``ValueError`` where
    they cannot be converted).

    The noise of a metric is its standard deviation between seeds where the surrogate is used:
    measured on the extra architectures trained with two seeds if there are at least
    :data:`MIN_REPLICATES` of them, else the mean over the table's architectures (0 for a one-seed
    table).
    """
    extra = list(extra)
    if extra and table.k != TOP_K:
        raise ValueError(
            f"the table's metrics are at K={table.k} and trainings measure K={TOP_K}: "
            "they cannot be fitted together"
        )
    archs = [table.arch(i) for i in range(len(table))]
    test = [table.test_metrics(i) for i in range(len(table))]
    columns = {
        "val_recall": list(table.scores("recall")),
        "val_ndcg": list(table.scores("ndcg")),
        "test_recall": [t["test_recall"] for t in test],
        "test_ndcg": [t["test_ndcg"] for t in test],
        "log_seconds": list(np.log(np.maximum(table.costs(), 1e-3))),
    }
    seeds = [float(len(table.seeds))] * len(table)
    grouped = extra_values(result.with_cost_version(table.cost_version) for result in extra)
    for arch, rows in grouped.items():
        archs.append(Architecture.from_string(arch))
        for name, column in columns.items():
            column.append(float(np.mean([row[name] for row in rows])))
        seeds.append(float(len(rows)))
    noise = {}
    for metric in METRICS:
        first, second = replicate_pairs(grouped, f"val_{metric}")
        if len(first) >= MIN_REPLICATES:
            noise[f"val_{metric}"] = float(np.std(first - second, ddof=1) / math.sqrt(2))
            continue
        per_seed = np.stack([table.scores(metric, seed) for seed in table.seeds])
        spread = per_seed.std(axis=0, ddof=1).mean() if len(table.seeds) > 1 else 0.0
        noise[f"val_{metric}"] = float(spread)
    return SurrogateData(
        archs,
        {k: np.asarray(v, float) for k, v in columns.items()},
        np.asarray(seeds),
        noise,
        np.arange(len(table), len(archs)),
        cost_version=table.cost_version,
    )


MIN_REPLICATES = 10
"""Architectures trained twice needed to measure the seed noise outside the table."""


def replicate_pairs(
    grouped: Mapping[str, Sequence[Mapping[str, float]]], target: str = "val_recall"
) -> tuple[np.ndarray, np.ndarray]:
    """``target`` of the first and second training of every architecture of ``grouped`` (from
    :func:`extra_values`) trained at least twice."""
    pairs = [(rows[0][target], rows[1][target]) for rows in grouped.values() if len(rows) >= 2]
    first, second = np.array(pairs, float).reshape(-1, 2).T
    return first, second


def extra_values(results: Iterable[TrainResult]) -> dict[str, list[dict[str, float]]]:
    """The surrogate's targets of each training, grouped by architecture string (in first-seen
    order; a failed training scores ``FAILED_SCORE``)."""
    out: dict[str, list[dict[str, float]]] = {}
    for result in results:
        ok = result.ok and bool(result.val_recall)
        seconds = result.cost_seconds or 1e-3
        out.setdefault(result.arch, []).append(
            {
                "val_recall": result.val_recall_best if ok else FAILED_SCORE,
                "val_ndcg": result.val_ndcg_best if ok else FAILED_SCORE,
                "test_recall": result.test_recall if ok else FAILED_SCORE,
                "test_ndcg": result.test_ndcg if ok else FAILED_SCORE,
                "log_seconds": math.log(max(seconds, 1e-3)),
            }
        )
    return out


def holdout_predictions(
    data: SurrogateData,
    fraction: float = 0.2,
    seed: int = 0,
    candidates: Sequence[int] | None = None,
    model: str = "kernel",
) -> tuple[np.ndarray, np.ndarray]:
    """Fit on all but a random ``fraction`` of ``candidates`` (default: every architecture) and
    predict the held-out ones: ``(predicted, measured)`` validation Recall@K. The fit chooses its
    hyperparameters as the full fit does (see :attr:`SurrogateData.select_on_outside`);
    ``model``: one of :data:`MODELS`."""
    pool = np.arange(len(data)) if candidates is None else np.asarray(candidates, int)
    if len(pool) < 2:
        raise ValueError(f"need at least 2 candidates to hold out, got {len(pool)}")
    order = np.random.default_rng(seed).permutation(pool)
    held = order[: max(2, round(fraction * len(pool)))]
    fitted, _ = data.fit(np.setdiff1d(np.arange(len(data)), held), ["val_recall"], model=model)
    measured = data.targets["val_recall"][held]
    return fitted.predict([data.archs[i] for i in held]), measured


def holdout_quality(data: SurrogateData, **split: Any) -> dict[str, float]:
    """Kendall tau and Spearman of :func:`holdout_predictions` (``split``: its keyword arguments
    ``fraction``, ``seed``, ``candidates``) against the measured scores.

    ``candidates`` restricts what may be held out, e.g. to the trainings outside the table's
    space, which measures how well the surrogate extrapolates beyond it.
    """
    predicted, measured = holdout_predictions(data, **split)
    return {
        "held_out": len(measured),
        "kendall_tau": kendall_tau(predicted, measured),
        "spearman": spearman(predicted, measured),
    }
