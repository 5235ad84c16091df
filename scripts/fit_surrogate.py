"""Fit the full-space surrogate on a task's table plus extra trainings outside it.

    python scripts/fit_surrogate.py              # version 2: table + the builds it was fitted on
    python scripts/fit_surrogate.py --version 1  # version 1's model (ARD kernel ridge + MLP)
    python scripts/fit_surrogate.py --version 0  # version 0's model (kernel ridge, one gamma)
    python scripts/fit_surrogate.py --extra DIR  # other build directories of extra trainings

Reports held-out Kendall tau and Spearman over several random 80/20 splits, twice: holding out
any architecture, and holding out only trainings outside the table (how well the surrogate
extrapolates to the rest of the full space). Architectures outside the table trained with a second
seed (``build_table.py ... --seeds 1 --limit N --out <build>-seed1``) show how well one seed ranks
them against the other: the ceiling for predicting single-seed results. Then fits on everything
and writes ``nasenv/tables/<slug>-surrogate-v<version>.npz`` (version 0: ``<slug>-surrogate.npz``)
and its SHA-256, and the quality report to ``benchmarks/results/surrogate-<slug>[-v<version>].
{json,png}``. Versions 1 and 2 (``model="ard+mlp"`` / ``"ard+rankmlp"``, :mod:`nasenv.predictors`)
need the ``fit`` extra (SciPy, scikit-learn; version 2 also torch) and a few minutes per fit on 2
cores. Version 0 was fitted on the first draw and
the first 30 of its second seeds; those builds have grown since, so ``--version 0`` now fits its
model on more data (write it elsewhere: ``--out /tmp/x --results /tmp/x``). ``--select-on
outside`` measures version 0's other choice of hyperparameters.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from nasenv.data import DEFAULT_DATASET, get_spec, write_checksums
from nasenv.surrogate import (
    MIN_REPLICATES,
    SURROGATE_VERSIONS,
    VERSION_BUILDS,
    VERSION_MODELS,
    extra_values,
    holdout_predictions,
    json_safe,
    kendall_tau,
    replicate_pairs,
    spearman,
    surrogate_filename,
    training_data,
)
from nasenv.table import TABLE_DIR, load_table
from nasenv.tablebuild import finished_trainings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BUILDS = ROOT / "benchmarks" / "table-build"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument(
        "--extra",
        type=Path,
        nargs="*",
        help="build directories of trainings to add (finished ones are used; the seeds of an "
        "architecture trained more than once are averaged); default: those the version was "
        "fitted on (nasenv.surrogate.VERSION_BUILDS)",
    )
    parser.add_argument("--splits", type=int, default=5, help="random hold-out splits (default 5)")
    parser.add_argument(
        "--version",
        type=int,
        choices=SURROGATE_VERSIONS,
        default=2,
        help="2: the ARD kernel ridge + ranking MLP blend (default); 1: the ARD kernel ridge + "
        "MLP mean; 0: the one-gamma kernel ridge",
    )
    parser.add_argument(
        "--select-on",
        choices=("all", "outside"),
        default="all",
        help="whose cross-validated predictions choose the kernel's hyperparameters: every "
        "architecture (default) or only the trainings outside the table",
    )
    parser.add_argument("--out", type=Path, default=TABLE_DIR)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    table = load_table(args.dataset)
    builds = args.extra
    if builds is None:
        builds = [BUILDS / name for name in VERSION_BUILDS[args.version]]
    extra = finished_trainings(builds)
    data = training_data(table, extra)
    noise = data.noise_std
    replicates = seed_agreement(extra)
    print(
        f"{len(data)} architectures ({len(data.outside)} outside the table, from {len(extra)} "
        f"trainings); seed noise {noise['val_recall']:.4f} (Recall), {noise['val_ndcg']:.4f} "
        f"(NDCG), measured {'on the replicates' if replicates else 'between the table seeds'}"
    )
    if replicates:
        print(
            f"{replicates['architectures']} architectures outside the table trained twice: "
            f"Kendall tau {replicates['kendall_tau']:.3f} and Spearman "
            f"{replicates['spearman']:.3f} between the two seeds, seed std "
            f"{replicates['seed_std']:.4f} ({replicates['seed_std_from_median']:.4f} from the "
            "median absolute deviation)"
        )

    outside = list(data.outside)
    model = VERSION_MODELS[args.version]
    if args.select_on == "outside":
        data = dataclasses.replace(data, select_on_outside=True)
    pools = {"any": None, "outside": outside} if len(outside) >= 10 else {"any": None}
    quality: dict[str, dict | None] = {}
    scatter: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, pool in pools.items():
        taus, rhos = [], []
        for split in range(args.splits):
            predicted, measured = holdout_predictions(
                data, seed=split, candidates=pool, model=model
            )
            taus.append(kendall_tau(predicted, measured))
            rhos.append(spearman(predicted, measured))
            if split == 0:
                scatter[name] = (predicted, measured)
        quality[name] = q = {
            "held_out": len(scatter[name][1]),
            "splits": args.splits,
            "kendall_tau": float(np.mean(taus)),
            "kendall_tau_std": float(np.std(taus)),
            "spearman": float(np.mean(rhos)),
            "spearman_std": float(np.std(rhos)),
        }
        print(
            f"held out ({name}, {q['held_out']} x {args.splits} splits): Kendall tau "
            f"{q['kendall_tau']:.3f} ± {q['kendall_tau_std']:.3f}, "
            f"Spearman {q['spearman']:.3f} ± {q['spearman_std']:.3f}"
        )

    quality["between_seeds"] = replicates
    meta = {
        "dataset": args.dataset,
        "table": Path(table.source).name,  # the file's name: no path of the fitting machine
        "builds": [Path(build).name for build in builds],
        "extra": len(extra),
        "select_on": args.select_on,
        "version": args.version,
        **quality,
    }
    surrogate, reports = data.fit(meta=meta, model=model)
    path = args.out / surrogate_filename(args.dataset, args.version)
    surrogate.save(path)
    write_checksums(args.out)
    for name, fit in reports.items():
        print(
            f"{name:12} gamma {fit.gamma:g} ridge {fit.ridge:g} "
            f"CV tau {fit.kendall_tau:.3f} (on {fit.n})"
        )
    print(f"wrote {path}")

    suffix = f"-v{args.version}" if args.version else ""
    stem = args.results / f"surrogate-{get_spec(args.dataset).slug}{suffix}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    fits = {name: json_safe(r.__dict__) for name, r in reports.items()}
    report = {
        "n": len(data),
        "outside": len(outside),
        "extra_trainings": len(extra),
        "select_on": args.select_on,
        "version": args.version,
        "noise_std": noise,
        **quality,
        "fits": fits,
    }
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(scatter, quality, stem.with_suffix(".png"))
    print(f"wrote {stem}.json and .png")


def seed_agreement(extra: list) -> dict | None:
    """How well one seed's validation Recall@K ranks the architectures trained with two seeds
    against the other's: the best a predictor of single-seed results can hope to reach."""
    a, b = replicate_pairs(extra_values(extra))
    if len(a) < MIN_REPLICATES:
        return None
    difference = a - b
    return {
        "architectures": len(a),
        "kendall_tau": kendall_tau(a, b),
        "spearman": spearman(a, b),
        "seed_std": float(np.std(difference, ddof=1) / np.sqrt(2)),
        "seed_std_from_median": float(
            1.4826 * np.median(np.abs(difference - np.median(difference))) / np.sqrt(2)
        ),
        "seed0": a.tolist(),
        "seed1": b.tolist(),
    }


def _plot(scatter: dict, quality: dict, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print("no plot: matplotlib is not installed (pip install 'recnas-books[plots]')")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {
        "any": "held out: any architecture",
        "outside": "held out: outside the table",
        "between_seeds": "outside the table: seed 1 against seed 0",
    }
    panels = dict(scatter)
    if quality.get("between_seeds"):
        seeds = quality["between_seeds"]
        panels["between_seeds"] = (np.array(seeds["seed1"]), np.array(seeds["seed0"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for ax, (name, (predicted, measured)) in zip(axes[0], panels.items(), strict=False):
        ax.scatter(measured, predicted, s=8, alpha=0.6)
        low, high = float(min(measured.min(), predicted.min())), float(measured.max())
        ax.plot([low, high], [low, high], color="grey", lw=1, ls="--")
        q = quality[name]
        ax.set_title(f"{titles[name]}\ntau {q['kendall_tau']:.2f}, Spearman {q['spearman']:.2f}")
        pair = name == "between_seeds"
        ax.set_xlabel(f"measured validation Recall@20{' (seed 0)' if pair else ''}")
        ax.set_ylabel("seed 1" if pair else "predicted")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
