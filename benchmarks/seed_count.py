"""What more training seeds buy: how firm a table's seed-mean ranking is against its seed count.

    python -m benchmarks.seed_count                  # every task's table of release 1 (seconds)
    python -m benchmarks.seed_count --release 0      # the tables of the version 0 ids

For each task's core table of ``--release`` (``nasenv.table.RELEASES``; a task whose table of
that release is not shipped is reported as missing), on best validation Recall@20 (a failed
seed counts 0; the test arrays are not read):

* split halves: for every pair of disjoint ``k``-seed subsets (``k`` up to half the seeds),
  Kendall tau and Spearman between their mean rankings and the overlap of their top 10;
* reliability: the share of the seed-mean's variance that is the architectures' (one-way
  analysis of variance over seeds), for 1 seed, 3 seeds and every seed of the table; this is
  Spearman-Brown's ``R_k = k R_1 / (1 + (k - 1) R_1)``;
* the first three seeds against every seed: whether the best architecture and the top 10 move;
* seeds by seed: each seed's mean score and median seconds per epoch, so seeds built later
  (another machine, another trainer protocol) are seen to agree with the first ones, or not.

Writes ``benchmarks/results/seed_count.json``, ``.md`` and ``.png`` (``--no-plot``: no figure).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import add_plot_option, add_results_option, write_results
from nasenv.data import DATASETS
from nasenv.surrogate import kendall_tau, spearman
from nasenv.table import BenchmarkTable, load_table

TOP = 10


def top_overlap(a: np.ndarray, b: np.ndarray, n: int = TOP) -> float:
    """Share of the ``n`` best of ``a`` that are among the ``n`` best of ``b``."""
    return len(set(np.argsort(-a)[:n]) & set(np.argsort(-b)[:n])) / n


def split_halves(per_seed: np.ndarray) -> list[dict[str, float]]:
    """Agreement of the mean rankings of every pair of disjoint ``k``-seed subsets."""
    seeds = range(per_seed.shape[1])
    rows = []
    for k in range(1, per_seed.shape[1] // 2 + 1):
        taus, rhos, tops = [], [], []
        for a in itertools.combinations(seeds, k):
            for b in itertools.combinations(sorted(set(seeds) - set(a)), k):
                if a < b:
                    x, y = per_seed[:, list(a)].mean(axis=1), per_seed[:, list(b)].mean(axis=1)
                    taus.append(kendall_tau(x, y))
                    rhos.append(spearman(x, y))
                    tops.append(top_overlap(x, y))
        rows.append(
            {
                "k": k,
                "pairs": len(taus),
                "kendall_tau": float(np.mean(taus)),
                "spearman": float(np.mean(rhos)),
                "top10_overlap": float(np.mean(tops)),
            }
        )
    return rows


def reliability(per_seed: np.ndarray) -> float:
    """One seed's reliability: the architectures' share of a single seed's score variance."""
    n_seeds = per_seed.shape[1]
    noise = float(per_seed.var(axis=1, ddof=1).mean())
    signal = float(per_seed.mean(axis=1).var(ddof=1)) - noise / n_seeds
    return max(signal, 0.0) / (max(signal, 0.0) + noise)


def spearman_brown(r1: float, k: int) -> float:
    return k * r1 / (1 + (k - 1) * r1)


def task_report(table: BenchmarkTable) -> dict[str, Any]:
    seeds = list(table.seeds)
    per_seed = np.stack([table.scores(seed=s) for s in seeds], axis=1)
    seconds = np.stack([table.costs(seed=s) for s in seeds], axis=1)
    epochs = np.maximum(table.epochs(), 1)
    r1 = reliability(per_seed)
    record: dict[str, Any] = {
        "dataset": table.dataset,
        "seeds": seeds,
        "architectures": len(table),
        "split_halves": split_halves(per_seed),
        "reliability": {k: spearman_brown(r1, k) for k in sorted({1, 3, len(seeds)})},
        "by_seed": [
            {
                "seed": s,
                "mean_recall": float(per_seed[:, j].mean()),
                "failed": int((~table.arrays["ok"][:, j]).sum()),
                "median_seconds_per_epoch": float(np.median(seconds[:, j] / epochs[:, j])),
            }
            for j, s in enumerate(seeds)
        ],
    }
    if len(seeds) > 3:
        first, every = per_seed[:, :3].mean(axis=1), per_seed.mean(axis=1)
        best_first = int(np.argmax(first))
        record["first_three_against_all"] = {
            "best_of_first_three": table.arch_strings[best_first],
            "best_of_all": table.arch_strings[int(np.argmax(every))],
            "rank_in_all_of_first_best": int((every > every[best_first]).sum()) + 1,
            "regret_in_all": float(every.max() - every[best_first]),
            "top10_overlap": top_overlap(first, every),
            "kendall_tau": kendall_tau(first, every),
            "later_seeds_against_first": kendall_tau(first, per_seed[:, 3:].mean(axis=1)),
        }
    return record


def markdown(records: list[dict[str, Any]], missing: list[str], release: int) -> str:
    lines = [
        f"# Seed count: how firm the seed-mean ranking is (table release {release})",
        "",
        "Validation Recall@20, failed seeds as 0. Split halves: mean over every pair of disjoint",
        "k-seed subsets. Reliability: the architectures' share of the k-seed mean's variance.",
        "",
        "| task | seeds | k | pairs | Kendall tau | Spearman | top-10 overlap |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        for h in r["split_halves"]:
            lines.append(
                f"| {r['dataset']} | {len(r['seeds'])} | {h['k']} | {h['pairs']} | "
                f"{h['kendall_tau']:.3f} | {h['spearman']:.3f} | {h['top10_overlap']:.2f} |"
            )
    lines += ["", "| task | " + " | ".join(f"R({k})" for k in (1, 3, 5)) + " |", "| --- " * 4 + "|"]
    for r in records:
        rel = r["reliability"]
        cells = [f"{rel[k]:.3f}" if k in rel else "-" for k in (1, 3, 5)]
        lines.append(f"| {r['dataset']} | " + " | ".join(cells) + " |")
    lines += ["", "| task | seed | mean Recall@20 | failed | median s/epoch |", "| --- " * 5 + "|"]
    for r in records:
        for s in r["by_seed"]:
            lines.append(
                f"| {r['dataset']} | {s['seed']} | {s['mean_recall']:.4f} | {s['failed']} | "
                f"{s['median_seconds_per_epoch']:.2f} |"
            )
    for r in records:
        f = r.get("first_three_against_all")
        if f:
            lines += [
                "",
                f"{r['dataset']}, seeds 0-2 against all {len(r['seeds'])}: best of 0-2 "
                f"`{f['best_of_first_three']}` is rank {f['rank_in_all_of_first_best']} of all "
                f"(regret {f['regret_in_all']:.4f}); best of all `{f['best_of_all']}`; top-10 "
                f"overlap {f['top10_overlap']:.1f}; Kendall tau {f['kendall_tau']:.3f}; seeds "
                f"3+ against 0-2: tau {f['later_seeds_against_first']:.3f}.",
            ]
    if missing:
        lines += ["", f"Not shipped in release {release}: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def plot(records: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ks = np.arange(1, 6)
    for r in records:
        r1 = r["reliability"][1]
        (line,) = ax.plot(ks, [spearman_brown(r1, int(k)) for k in ks], label=r["dataset"])
        ax.plot(len(r["seeds"]), r["reliability"][len(r["seeds"])], "o", color=line.get_color())
    ax.set_xlabel("seeds averaged")
    ax.set_ylabel("reliability of the seed mean")
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.seed_count", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--release", type=int, default=1, help="the table release (default 1)")
    add_results_option(parser)
    add_plot_option(parser)
    args = parser.parse_args(argv)
    records, missing = [], []
    for task in DATASETS:
        try:
            table = load_table(task, release=args.release)
        except FileNotFoundError:
            missing.append(task)
            continue
        if len(table.seeds) > 1:
            records.append(task_report(table))
        else:
            missing.append(f"{task} (one seed)")
    stem = "seed_count" if args.release == 1 else f"seed_count-release{args.release}"
    record = {"release": args.release, "tasks": records, "missing": missing}
    write_results(args.results, stem, record, markdown(records, missing, args.release))
    if not args.no_plot:
        plot(records, args.results / f"{stem}.png")


if __name__ == "__main__":
    main()
