"""The surrogate's model choice: kernel ridge (one gamma, or one weight per slot), gradient-boosted
trees, a small neural network and the ensemble shipped as version 1, on the same hold-out splits
of the real trainings outside the table.

    python -m benchmarks.surrogate_models               # Books-20core, 5 splits (~25 min)
    python -m benchmarks.surrogate_models --splits 10

The data is what ``scripts/fit_surrogate.py`` fits: the table's seed means plus every finished
training of the full-space sample builds (``--extra``; both draws and the second-seed runs by
default). Each split holds out a random 20% of the trainings outside the table, as the shipped
surrogate's quality report does, and every model is fitted on the rest (table included):

* ``kernel ridge (v0)``: the version 0 surrogate's model (:class:`nasenv.surrogate.Surrogate`,
  ``model="kernel"``, its own hyperparameter selection);
* ``ARD kernel ridge``: one kernel weight per slot, chosen by marginal likelihood
  (:func:`nasenv.predictors.fit_ard`);
* ``gradient-boosted trees``: scikit-learn's ``HistGradientBoostingRegressor`` on a one-hot
  encoding of the categorical slots and the log-scaled numeric ones
  (:func:`nasenv.predictors.features`), an average of 5 seeds;
* ``MLP``: scikit-learn's ``MLPRegressor`` (two hidden layers of 128, early stopping) on the
  same features, standardised targets, an average of 5 seeds (:func:`nasenv.predictors.fit_mlp`);
* ``ARD + MLP (v1)``: the mean of the two, the version 1 surrogate's model
  (``model="ard+mlp"``). The three come from one fit of that model
  (:meth:`nasenv.surrogate.Surrogate.components`).

Quality card per model (mean ± std over the splits): Kendall tau, Spearman, sparse Kendall tau
(NAS-Bench-301's convention: both sides rounded to 0.001 of Recall@20, about one seed standard
deviation, before the tau), and Kendall tau within the measured top 10% of the held-out
trainings. Beside them, the ceiling: the tau between two seeds of the architectures trained twice.
Results: ``benchmarks/results/surrogate_models.{json,md}``, and with matplotlib (the ``plots``
extra) ``surrogate_models.png``: predicted against measured on the first split's held-out
trainings, for the v0 model, the MLP and the shipped ensemble.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import add_results_option, write_results
from nasenv.data import DEFAULT_DATASET
from nasenv.predictors import features
from nasenv.space import Architecture
from nasenv.surrogate import (
    SurrogateData,
    extra_values,
    kendall_tau,
    replicate_pairs,
    spearman,
    training_data,
)
from nasenv.table import load_table
from nasenv.tablebuild import finished_trainings

ROOT = Path(__file__).resolve().parent.parent
BUILDS = ROOT / "benchmarks" / "table-build"
EXTRA = (
    "Books-20core-full-sample500-no-core",
    "Books-20core-full-sample500-no-core-seed1",
    "Books-20core-full-sample2000-draw1-no-core",
)
SPARSE_STEP = 1e-3
Predictor = Callable[[SurrogateData, np.ndarray, list[Architecture]], np.ndarray]


def kernel_ridge(data: SurrogateData, train: np.ndarray, held: list[Architecture]) -> np.ndarray:
    model, _ = data.fit(train, ["val_recall"])
    return model.predict(held)


def version_1(
    data: SurrogateData, train: np.ndarray, held: list[Architecture]
) -> dict[str, np.ndarray]:
    """The shipped version 1 model fitted on ``train``: its ARD kernel ridge, its MLP and their
    mean (what it answers), from one fit."""
    model, _ = data.fit(train, ["val_recall"], model="ard+mlp")
    parts = model.components(held)
    return {"ARD kernel ridge": parts["ard"], "MLP": parts["mlp"], ENSEMBLE: model.predict(held)}


def boosted_trees(data: SurrogateData, train: np.ndarray, held: list[Architecture]) -> np.ndarray:
    from sklearn.ensemble import HistGradientBoostingRegressor

    x, y = features([data.archs[i] for i in train]), data.targets["val_recall"][train]
    predictions = []
    for seed in range(5):
        model = HistGradientBoostingRegressor(
            max_iter=600, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0,
            random_state=seed,
        )  # fmt: skip
        predictions.append(model.fit(x, y, sample_weight=data.seeds[train]).predict(features(held)))
    return np.mean(predictions, axis=0)


MODELS: dict[str, Predictor] = {
    "kernel ridge (v0)": kernel_ridge,
    "gradient-boosted trees": boosted_trees,
}
ENSEMBLE = "ARD + MLP (v1)"
"""The shipped version 1 model: the mean of the ARD kernel ridge's and the MLP's predictions."""
ROWS = ("kernel ridge (v0)", "ARD kernel ridge", "gradient-boosted trees", "MLP", ENSEMBLE)
"""The report's rows: :data:`MODELS` and the three predictions of :func:`version_1`."""


def card(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Kendall tau, Spearman, sparse Kendall tau and the tau within the measured top 10%."""
    top = measured >= np.quantile(measured, 0.9)
    rounded = np.round(predicted / SPARSE_STEP), np.round(measured / SPARSE_STEP)
    return {
        "kendall_tau": kendall_tau(predicted, measured),
        "spearman": spearman(predicted, measured),
        "sparse_kendall_tau": kendall_tau(*rounded),
        "top10_kendall_tau": kendall_tau(predicted[top], measured[top]),
    }


def report(record: dict[str, Any]) -> str:
    ceiling = record["between_seeds"]
    lines = [
        "# The surrogate's model choice",
        "",
        f"`python -m benchmarks.surrogate_models --splits {record['splits']}` on "
        f"{record['dataset']}: {record['architectures']:,} architectures "
        f"({record['outside']:,} outside the table, {record['held_out']} held out per split).",
        "",
        "| model | Kendall tau | Spearman | sparse Kendall tau | tau in the top 10% |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, scores in record["models"].items():
        cells = [
            f"{np.mean(scores[k]):.3f} ± {np.std(scores[k]):.3f}"
            for k in ("kendall_tau", "spearman", "sparse_kendall_tau", "top10_kendall_tau")
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += [
        "",
        f"Ceiling: {ceiling['architectures']} architectures outside the table trained with two "
        f"seeds agree at Kendall tau {ceiling['kendall_tau']:.3f} (Spearman "
        f"{ceiling['spearman']:.3f}); their seed standard deviation is {ceiling['seed_std']:.4f}, "
        f"the surrogate's noise model {record['noise_std']:.4f}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.surrogate_models", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--extra", type=Path, nargs="*", default=[BUILDS / e for e in EXTRA])
    parser.add_argument("--splits", type=int, default=5)
    add_results_option(parser)
    args = parser.parse_args(argv)
    table = load_table(args.dataset)
    extra = finished_trainings(args.extra)
    data = training_data(table, extra)
    first, second = replicate_pairs(extra_values(extra))
    outside = np.asarray(data.outside)
    scores: dict[str, dict[str, list[float]]] = {name: {} for name in ROWS}
    held_out = 0
    for split in range(args.splits):
        order = np.random.default_rng(split).permutation(outside)
        held = order[: max(2, round(0.2 * len(outside)))]
        train = np.setdiff1d(np.arange(len(data)), held)
        measured = data.targets["val_recall"][held]
        held_out = len(held)
        archs = [data.archs[i] for i in held]
        predictions = {name: predict(data, train, archs) for name, predict in MODELS.items()}
        predictions.update(version_1(data, train, archs))
        if split == 0:
            shown = {"measured": measured, **predictions}
        for name in ROWS:
            predicted = predictions[name]
            for key, value in card(predicted, measured).items():
                scores[name].setdefault(key, []).append(value)
            print(split, name, {k: round(v[-1], 3) for k, v in scores[name].items()}, flush=True)
    record = {
        "dataset": args.dataset,
        "splits": args.splits,
        "architectures": len(data),
        "outside": len(outside),
        "held_out": held_out,
        "trainings": len(extra),
        "noise_std": data.noise_std["val_recall"],
        "between_seeds": {
            "architectures": len(first),
            "kendall_tau": kendall_tau(first, second),
            "spearman": spearman(first, second),
            "seed_std": float(np.std(first - second, ddof=1) / math.sqrt(2)),
        },
        "models": scores,
    }
    write_results(args.results, "surrogate_models", record, report(record))
    plot(shown, scores, args.results / "surrogate_models.png")


def plot(shown: dict[str, np.ndarray], scores: dict, path: Path) -> None:
    """Predicted against measured validation Recall@20 on the first split, three models."""
    try:
        import matplotlib
    except ImportError:
        print("no plot: matplotlib is not installed (pip install 'recnas-books[plots]')")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["kernel ridge (v0)", "MLP", ENSEMBLE]
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.4), sharey=True)
    measured = shown["measured"]
    for ax, name in zip(axes, names, strict=True):
        ax.scatter(measured, shown[name], s=6, alpha=0.5)
        low, high = float(measured.min()), float(measured.max())
        ax.plot([low, high], [low, high], color="grey", lw=1, ls="--")
        tau = scores[name]["kendall_tau"]
        ax.set_title(f"{name}\nsplit 0 tau {tau[0]:.3f}; {len(tau)} splits {np.mean(tau):.3f}")
        ax.set_xlabel("measured validation Recall@20 (held out, outside the table)")
    axes[0].set_ylabel("predicted")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
