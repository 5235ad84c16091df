"""The surrogate's model choice: kernel ridge (one gamma, or one weight per slot), gradient-boosted
trees, a small neural network, a ranking one and the ensembles shipped as versions 1 and 2, on
the same hold-out splits of the real trainings outside the table.

    python -m benchmarks.surrogate_models               # Books-20core, 5 splits (~25 min)
    python -m benchmarks.surrogate_models --splits 10 --models ard   # the ARD-based rows only
    python -m benchmarks.surrogate_models --splits 10 --models ard --version 2   # version 2's data

The data is what ``scripts/fit_surrogate.py`` fits: the table's seed means plus every finished
training of the full-space sample builds the surrogate ``--version`` was fitted on
(:data:`nasenv.surrogate.VERSION_BUILDS`; default the newest, version 3: three draws and the
second-seed runs), or of ``--extra`` builds. Each split holds out a random 20% of the trainings
outside the table, as the shipped surrogate's quality report does, and every model is fitted on
the rest (table included):

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
  (``model="ard+mlp"``);
* ``ranking MLP``: the same network trained on half squared error, half pairwise logistic loss,
  early-stopped on Kendall tau (:func:`nasenv.predictors.fit_rank_mlp`);
* ``ARD + ranking MLP (v2)``: the version 2 surrogate's model (``model="ard+rankmlp"``), 0.3 of
  the ARD kernel ridge plus 0.7 of the ranking MLP. These four come from one fit of that model
  (:meth:`nasenv.surrogate.Surrogate.components`) and one of :func:`nasenv.predictors.fit_mlp`:
  both versions fit the same ARD kernel ridge.

Each finished split is journaled (``<results>/<name>.jsonl``) and the report rewritten: a killed
run resumes where it stopped. ``--models ard`` computes only those four rows and the ARD kernel
ridge's, the ones that change with the network. With more than five splits the report gives the
mean over the first five (where the version 2 blend was chosen) and over the rest (where it was
not) beside the mean over all.

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
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import add_results_option, write_results
from nasenv.data import DEFAULT_DATASET
from nasenv.predictors import features, fit_mlp, mlp_predict
from nasenv.space import Architecture
from nasenv.surrogate import (
    SURROGATE_VERSIONS,
    VERSION_BUILDS,
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
EXTRA = VERSION_BUILDS[SURROGATE_VERSIONS[-1]]
"""The default data: the builds the newest surrogate version was fitted on."""
SPARSE_STEP = 1e-3
Predictor = Callable[[SurrogateData, np.ndarray, list[Architecture]], np.ndarray]


def kernel_ridge(data: SurrogateData, train: np.ndarray, held: list[Architecture]) -> np.ndarray:
    model, _ = data.fit(train, ["val_recall"])
    return model.predict(held)


def ard_models(
    data: SurrogateData, train: np.ndarray, held: list[Architecture]
) -> dict[str, np.ndarray]:
    """The shipped version 2 model fitted on ``train`` (its ARD kernel ridge, its ranking MLP and
    their blend, what it answers), and version 1's MLP on the same data with its mean with that
    ARD kernel ridge (version 1's model)."""
    model, _ = data.fit(train, ["val_recall"], model="ard+rankmlp")
    parts = model.components(held)
    y = data.targets["val_recall"][train]
    mlp = mlp_predict(fit_mlp(features([data.archs[i] for i in train]), y), features(held))
    return {
        "ARD kernel ridge": parts["ard"],
        "MLP": mlp,
        ENSEMBLE: (parts["ard"] + mlp) / 2.0,
        "ranking MLP": parts["mlp"],
        VERSION_2: model.predict(held),
    }


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
VERSION_2 = "ARD + ranking MLP (v2)"
"""The shipped version 2 model: 0.3 of the ARD kernel ridge's prediction, 0.7 of the ranking
MLP's (:data:`nasenv.surrogate.RANK_BLEND`)."""
ROWS = (
    "kernel ridge (v0)", "ARD kernel ridge", "gradient-boosted trees", "MLP", ENSEMBLE,
    "ranking MLP", VERSION_2,
)  # fmt: skip
"""The report's rows: :data:`MODELS` and the five predictions of :func:`ard_models`."""
FIRST = 5
"""The splits the version 2 blend was chosen on (``RANK_BLEND``); the report sets them apart."""


def held_out(outside: np.ndarray, split: int) -> np.ndarray:
    """Split ``split``'s held-out trainings: a random 20% (at least 2) of those ``outside`` the
    table, seeded by the split."""
    order = np.random.default_rng(split).permutation(outside)
    return order[: max(2, round(0.2 * len(outside)))]


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
        f"`{record['command']}` on {record['dataset']}, {record['splits']} splits finished: "
        f"{record['architectures']:,} architectures "
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
    if record["splits"] > FIRST:
        lines += [
            "",
            f"Kendall tau over splits 0-{FIRST - 1} (where the version 2 blend was chosen) and "
            f"{FIRST}-{record['splits'] - 1} (fresh), per model, and the paired difference from "
            f"version 1 over all {record['splits']} splits (how many splits it wins):",
            "",
            f"| model | splits 0-{FIRST - 1} | splits {FIRST}-{record['splits'] - 1} | "
            "minus v1 | splits won |",
            "| --- | --- | --- | --- | --- |",
        ]
        reference = np.array(record["models"][ENSEMBLE]["kendall_tau"])
        for name, scores in record["models"].items():
            tau = np.array(scores["kendall_tau"])
            lines.append(
                f"| {name} | {tau[:FIRST].mean():.3f} | {tau[FIRST:].mean():.3f} | "
                f"{(tau - reference).mean():+.4f} | {int((tau > reference).sum())} |"
            )
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
    parser.add_argument(
        "--version",
        type=int,
        choices=[v for v in SURROGATE_VERSIONS if v >= 2],
        default=SURROGATE_VERSIONS[-1],
        help="whose data: the builds that surrogate version was fitted on (default "
        f"{SURROGATE_VERSIONS[-1]}); results of versions after 2 are named <name>-v<version>",
    )
    parser.add_argument("--extra", type=Path, nargs="*", help="other builds instead of those")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument(
        "--models",
        choices=("all", "ard"),
        default="all",
        help="all rows (default), or only the ARD kernel ridge and the networks beside it",
    )
    add_results_option(parser)
    args = parser.parse_args(argv)
    table = load_table(args.dataset)
    builds = args.extra or [BUILDS / b for b in VERSION_BUILDS[args.version]]
    extra = finished_trainings(builds)
    data = training_data(table, extra)
    first, second = replicate_pairs(extra_values(extra))
    outside = np.asarray(data.outside)
    models = MODELS if args.models == "all" else {}
    rows = [r for r in ROWS if r in models or r not in MODELS]
    name = "surrogate_models" if args.models == "all" else "surrogate_models_ard"
    name += f"-v{args.version}" if args.version > 2 else ""
    journal = args.results / f"{name}.jsonl"
    done = _journaled(journal, rows, len(extra))
    command = f"python -m benchmarks.surrogate_models --splits {args.splits}"
    command += "" if args.models == "all" else " --models ard"
    command += "" if args.version == SURROGATE_VERSIONS[-1] else f" --version {args.version}"
    record = {
        "command": command,
        "builds": [Path(b).name for b in builds],
        "dataset": args.dataset,
        "architectures": len(data),
        "outside": len(outside),
        "held_out": len(held_out(outside, 0)),
        "trainings": len(extra),
        "noise_std": data.noise_std["val_recall"],
        "between_seeds": {
            "architectures": len(first),
            "kendall_tau": kendall_tau(first, second),
            "spearman": spearman(first, second),
            "seed_std": float(np.std(first - second, ddof=1) / math.sqrt(2)),
        },
    }
    shown = None
    for split in range(args.splits):
        if split in done:
            print(f"split {split}: journaled in {journal}")
            continue
        held = held_out(outside, split)
        train = np.setdiff1d(np.arange(len(data)), held)
        measured = data.targets["val_recall"][held]
        archs = [data.archs[i] for i in held]
        predictions = {row: predict(data, train, archs) for row, predict in models.items()}
        predictions.update(ard_models(data, train, archs))
        if split == 0:
            shown = {"measured": measured, **predictions}
        done[split] = {row: card(predictions[row], measured) for row in rows}
        for row in rows:
            print(split, row, {k: round(v, 3) for k, v in done[split][row].items()}, flush=True)
        journal.parent.mkdir(parents=True, exist_ok=True)
        with journal.open("a") as f:  # a killed run keeps every finished split
            entry = {"split": split, "trainings": len(extra), "rows": done[split]}
            f.write(json.dumps(entry) + "\n")
        splits = sorted(s for s in done if s < args.splits)
        scores = {
            row: {key: [done[s][row][key] for s in splits] for key in done[splits[0]][row]}
            for row in rows
        }
        record.update(splits=len(splits), models=scores)
        write_results(args.results, name, record, report(record))
    if shown is not None:
        plot(shown, record["models"], args.results / f"{name}.png")


def _journaled(
    journal: Path, rows: list[str], trainings: int
) -> dict[int, dict[str, dict[str, float]]]:
    """The splits a journal holds with every one of ``rows``, by split; an entry fitted on
    another number of trainings (the data grew) is not reused (entries written before the count
    was recorded are version 2's data and are)."""
    if not journal.exists():
        return {}
    entries = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    return {
        e["split"]: e["rows"]
        for e in entries
        if set(rows) <= set(e["rows"]) and e.get("trainings", trainings) == trainings
    }


def plot(shown: dict[str, np.ndarray], scores: dict, path: Path) -> None:
    """Predicted against measured validation Recall@20 on the first split, three models."""
    try:
        import matplotlib
    except ImportError:
        print("no plot: matplotlib is not installed (pip install 'recnas-books[plots]')")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in ("kernel ridge (v0)", ENSEMBLE, VERSION_2) if n in shown]
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
