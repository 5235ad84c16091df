"""What the benchmark table holds: size, build cost, score distribution, seed noise, fidelities.

    python -m benchmarks.table_stats                 # the shipped Books-20core table (seconds)
    python -m benchmarks.table_stats --sample        # the sample table (nasenv.testing)
    python -m benchmarks.table_stats --dataset Books-Canada-5core   # another task's table
    python -m benchmarks.table_stats --build benchmarks/table-build/Books-20core --seeds 0 1
                                                     # the finished seeds of a build

Reports (all on validation Recall@20 unless stated; the test arrays are not read):

* size: architectures x seeds, file size, failed trainings;
* build cost: the sum over trainings of their stored seconds (each ran on one thread);
* distribution of the seed-mean score (quantiles and a histogram), score against cost;
* the 5 best and 5 worst architectures, with their seed standard deviation;
* signal-to-noise: standard deviation of the architectures' seed means over the mean seed
  standard deviation, and the rank agreement (Spearman) between seeds;
* fidelity: Spearman and Kendall tau between the ranking at each smaller budget
  ``(max_epochs, patience)`` (replayed exactly on the stored curves) and the stored budget's,
  with the budget's mean cost as a fraction of the stored one.

Writes ``benchmarks/results/table_stats-<dataset>.json`` and ``.png`` and prints markdown.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from benchmarks.common import add_plot_option, add_results_option, sample_table
from nasenv.data import DEFAULT_DATASET
from nasenv.surrogate import kendall_tau, spearman
from nasenv.table import BenchmarkTable, load_table
from nasenv.tablebuild import ShardStore, assemble

BUDGETS = ((3, 2), (5, 2), (5, 5), (10, 3), (10, 5), (15, 5), (20, 3), (20, 5), (25, 5))


def seed_noise(per_seed: np.ndarray) -> dict[str, float] | None:
    """Signal-to-noise and between-seed rank agreement of ``(architectures, seeds)`` scores
    (``None`` for one seed)."""
    if per_seed.shape[1] < 2:
        return None
    seed_std = per_seed.std(axis=1, ddof=1)
    pairs = list(itertools.combinations(range(per_seed.shape[1]), 2))
    return {
        "std_of_means": float(per_seed.mean(axis=1).std(ddof=1)),
        "mean_seed_std": float(seed_std.mean()),
        "median_seed_std": float(np.median(seed_std)),
        "max_seed_std": float(seed_std.max()),
        "signal_to_noise": float(per_seed.mean(axis=1).std(ddof=1) / seed_std.mean()),
        "seed_spearman": float(
            np.mean([spearman(per_seed[:, a], per_seed[:, b]) for a, b in pairs])
        ),
    }


def fidelity_rows(table: BenchmarkTable) -> list[dict[str, float]]:
    reference, full_cost = table.scores(), table.costs().mean()
    rows = []
    for epochs, patience in BUDGETS:
        if epochs > table.max_epochs or patience > table.patience:
            continue  # not answerable from curves that stopped at the stored budget
        scores = table.scores(fidelity=(epochs, patience))
        rows.append(
            {
                "max_epochs": epochs,
                "patience": patience,
                "spearman": spearman(scores, reference),
                "kendall_tau": kendall_tau(scores, reference),
                "cost_fraction": float(table.costs(fidelity=(epochs, patience)).mean() / full_cost),
            }
        )
    return rows


def stats(table: BenchmarkTable, path: Path) -> dict:
    scores = table.scores()
    order = np.argsort(-scores, kind="stable")
    per_seed = np.stack([table.scores(seed=s) for s in table.seeds], axis=1)
    seconds = np.stack([table.costs(seed=s) for s in table.seeds], axis=1)

    def describe(i: int) -> dict:
        std = float(per_seed[i].std(ddof=1)) if len(table.seeds) > 1 else None
        return {"arch": table.arch_strings[i], "val_recall": float(scores[i]), "seed_std": std}

    quantiles = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
    return {
        "dataset": table.dataset,
        "space": table.space_name,
        "architectures": len(table),
        "seeds": list(table.seeds),
        "budget": [table.max_epochs, table.patience],
        "file_mb": path.stat().st_size / 1e6 if path.exists() else None,
        "failed_trainings": int((~table.arrays["ok"]).sum()),
        "build_core_hours": float(seconds.sum() / 3600),
        "mean_training_seconds": float(seconds.mean()),
        "quantiles": {f"{q:g}": float(np.quantile(scores, q)) for q in quantiles},
        "best": [describe(int(i)) for i in order[:5]],
        "worst": [describe(int(i)) for i in order[::-1][:5]],
        "seed_noise": seed_noise(per_seed),
        "fidelity": fidelity_rows(table),
    }


def plot(table: BenchmarkTable, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores, costs = table.scores(), table.costs()
    fig, (ax_h, ax_c) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax_h.hist(scores, bins=40, color="tab:blue", alpha=0.85)
    ax_h.set_xlabel("validation Recall@20 (seed mean)")
    ax_h.set_ylabel("architectures")
    first = np.array([a.split(",")[0].split("=")[1].split("-")[0] for a in table.arch_strings])
    for layer in sorted(set(first)):
        pick = first == layer
        ax_c.scatter(costs[pick], scores[pick], s=8, alpha=0.6, label=f"first layer {layer}")
    ax_c.set_xscale("log")
    ax_c.set_xlabel("training seconds at the stored budget (seed mean, one thread)")
    ax_c.set_ylabel("validation Recall@20 (seed mean)")
    ax_c.legend(fontsize=8)
    for ax in (ax_h, ax_c):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{table.dataset}: {len(table)} architectures x {len(table.seeds)} seeds")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def markdown(s: dict) -> str:
    q = s["quantiles"]
    size = "not assembled" if s["file_mb"] is None else f"file {s['file_mb']:.2f} MB"
    lines = [
        f"{s['dataset']}, {s['space']} space: {s['architectures']} architectures x seeds "
        f"{s['seeds']} at {s['budget'][0]} epochs / patience {s['budget'][1]}; "
        f"{s['failed_trainings']} failed trainings; {size}; build cost "
        f"{s['build_core_hours']:.1f} core-hours ({s['mean_training_seconds']:.1f} s per "
        "training).",
        "",
        f"Validation Recall@20 (seed mean): min {q['0']:.4f}, 10% {q['0.1']:.4f}, 25% "
        f"{q['0.25']:.4f}, median {q['0.5']:.4f}, 75% {q['0.75']:.4f}, 90% {q['0.9']:.4f}, "
        f"max {q['1']:.4f}.",
        "",
        "| rank | architecture | val Recall@20 | seed std |",
        "| --- | --- | --- | --- |",
    ]
    n = s["architectures"]
    for rank, row in [
        *zip(range(1, 6), s["best"], strict=False),
        *zip(range(n, n - 5, -1), s["worst"], strict=False),
    ]:
        std = "-" if row["seed_std"] is None else f"{row['seed_std']:.4f}"
        lines.append(f"| {rank} | `{row['arch']}` | {row['val_recall']:.4f} | {std} |")
    noise = s["seed_noise"]
    lines.append("")
    if noise:
        lines.append(
            f"Seed noise: std of architecture means {noise['std_of_means']:.4f}, mean seed std "
            f"{noise['mean_seed_std']:.4f} (median {noise['median_seed_std']:.4f}, max "
            f"{noise['max_seed_std']:.4f}): signal-to-noise **{noise['signal_to_noise']:.1f}**; "
            f"mean Spearman between seeds {noise['seed_spearman']:.3f}."
        )
    else:
        lines.append("Seed noise: one seed only, not measurable.")
    lines += ["", "| budget | Spearman | Kendall tau | mean cost |", "| --- | --- | --- | --- |"]
    for row in s["fidelity"]:
        lines.append(
            f"| {row['max_epochs']} epochs / patience {row['patience']} | {row['spearman']:.3f} "
            f"| {row['kendall_tau']:.3f} | {row['cost_fraction']:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.table_stats", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sample", action="store_true", help="the sample table")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="the task whose table to read")
    parser.add_argument(
        "--build", type=Path, help="read a build directory instead (e.g. before it ships)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="with --build: the finished seeds")
    add_results_option(parser)
    add_plot_option(parser)
    args = parser.parse_args()
    if args.sample:
        table = sample_table()
    elif args.build:
        seeds = tuple(args.seeds) if args.seeds else None
        table = assemble(ShardStore.open(args.build), seeds)
    else:
        table = load_table(args.dataset)
    name = f"table_stats-{'sample' if args.sample else table.dataset}"
    if args.build:
        name += "-build-seeds-" + "-".join(map(str, table.seeds))
    result = stats(table, Path(table.source))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    if not args.no_plot:
        plot(table, args.results / f"{name}.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
