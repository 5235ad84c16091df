"""Fit the full-space surrogate on a task's table plus extra trainings outside it.

    python scripts/fit_surrogate.py             # Books-20core table + the full-space sample build
    python scripts/fit_surrogate.py --extra DIR # other build directories of extra trainings

Reports held-out Kendall tau and Spearman over several random 80/20 splits, twice: holding out
any architecture, and holding out only trainings outside the table (how well the surrogate
extrapolates to the rest of the full space). Architectures outside the table trained with a second
seed (``build_table.py ... --seeds 1 --limit N --out <build>-seed1``) show how well one seed ranks
them against the other: the ceiling for predicting single-seed results. Then fits on everything and writes
``nasenv/tables/<slug>-surrogate.npz`` and its SHA-256, and the quality report to
``benchmarks/results/surrogate-<slug>.{json,png}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nasenv.data import DEFAULT_DATASET, get_spec, write_checksums
from nasenv.surrogate import (
    extra_values,
    holdout_predictions,
    kendall_tau,
    spearman,
    surrogate_filename,
    training_data,
)
from nasenv.table import TABLE_DIR, load_table
from nasenv.tablebuild import ShardStore

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument(
        "--extra",
        type=Path,
        nargs="*",
        default=[
            ROOT / "benchmarks/table-build/Books-20core-full-sample500-no-core",
            ROOT / "benchmarks/table-build/Books-20core-full-sample500-no-core-seed1",
        ],
        help="build directories of trainings to add (finished ones are used; the seeds of an "
        "architecture trained more than once are averaged)",
    )
    parser.add_argument("--splits", type=int, default=5, help="random hold-out splits (default 5)")
    parser.add_argument("--out", type=Path, default=TABLE_DIR)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    table = load_table(args.dataset)
    extra = []
    for directory in args.extra:
        if (directory / ShardStore.PLAN_FILE).exists():
            extra += list(ShardStore.open(directory).results())
    data = training_data(table, extra)
    noise = data.noise_std
    print(
        f"{len(data)} architectures ({len(extra)} outside the table); seed noise "
        f"{noise['val_recall']:.4f} (Recall), {noise['val_ndcg']:.4f} (NDCG)"
    )

    replicates = seed_agreement(extra)
    if replicates:
        print(
            f"{replicates['architectures']} architectures outside the table trained twice: "
            f"Kendall tau {replicates['kendall_tau']:.3f} and Spearman "
            f"{replicates['spearman']:.3f} between the two seeds, seed std "
            f"{replicates['seed_std']:.4f}"
        )

    outside = list(data.outside)
    pools = {"any": None, "outside": outside} if len(outside) >= 10 else {"any": None}
    quality: dict[str, dict] = {}
    scatter: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, pool in pools.items():
        taus, rhos = [], []
        for split in range(args.splits):
            predicted, measured = holdout_predictions(data, seed=split, candidates=pool)
            taus.append(kendall_tau(predicted, measured))
            rhos.append(spearman(predicted, measured))
            if split == 0:
                scatter[name] = (predicted, measured)
        quality[name] = {
            "held_out": len(scatter[name][1]),
            "splits": args.splits,
            "kendall_tau": float(np.mean(taus)),
            "kendall_tau_std": float(np.std(taus)),
            "spearman": float(np.mean(rhos)),
            "spearman_std": float(np.std(rhos)),
        }
        q = quality[name]
        print(
            f"held out ({name}, {q['held_out']} x {args.splits} splits): Kendall tau "
            f"{q['kendall_tau']:.3f} ± {q['kendall_tau_std']:.3f}, "
            f"Spearman {q['spearman']:.3f} ± {q['spearman_std']:.3f}"
        )

    quality["between_seeds"] = replicates
    meta = {"dataset": args.dataset, "table": table.source, "extra": len(extra), **quality}
    surrogate, reports = data.fit(meta=meta)
    path = args.out / surrogate_filename(args.dataset)
    surrogate.save(path)
    write_checksums(args.out)
    for name, report in reports.items():
        print(
            f"{name:12} gamma {report.gamma:g} ridge {report.ridge:g} "
            f"CV tau {report.kendall_tau:.3f} (on {report.n})"
        )
    print(f"wrote {path}")

    stem = args.results / f"surrogate-{get_spec(args.dataset).slug}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    fits = {name: r.__dict__ for name, r in reports.items()}
    report = {"n": len(data), "extra": len(extra), "noise_std": noise, **quality, "fits": fits}
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(scatter, quality, stem.with_suffix(".png"))
    print(f"wrote {stem}.json and .png")


def seed_agreement(extra: list) -> dict | None:
    """How well one seed's validation Recall@K ranks the architectures trained with two seeds
    against the other's: the best a predictor of single-seed results can hope to reach."""
    pairs = [rows[:2] for rows in extra_values(extra).values() if len(rows) >= 2]
    if len(pairs) < 10:
        return None
    a, b = (np.array([pair[k]["val_recall"] for pair in pairs]) for k in (0, 1))
    return {
        "architectures": len(pairs),
        "kendall_tau": kendall_tau(a, b),
        "spearman": spearman(a, b),
        "seed_std": float(np.std(a - b, ddof=1) / np.sqrt(2)),
    }


def _plot(scatter: dict, quality: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"any": "held out: any architecture", "outside": "held out: outside the table"}
    fig, axes = plt.subplots(1, len(scatter), figsize=(5 * len(scatter), 4.5), squeeze=False)
    for ax, (name, (predicted, measured)) in zip(axes[0], scatter.items()):
        ax.scatter(measured, predicted, s=8, alpha=0.6)
        low, high = float(min(measured.min(), predicted.min())), float(measured.max())
        ax.plot([low, high], [low, high], color="grey", lw=1, ls="--")
        q = quality[name]
        ax.set_title(f"{titles[name]}\ntau {q['kendall_tau']:.2f}, Spearman {q['spearman']:.2f}")
        ax.set_xlabel("measured validation Recall@20")
        ax.set_ylabel("predicted")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
