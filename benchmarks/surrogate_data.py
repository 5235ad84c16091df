"""How the surrogate's held-out order grows with its data: the version 1 model refitted on a
fraction of the trainings outside the table, on ``benchmarks.surrogate_models``' splits.

    python -m benchmarks.surrogate_data                        # fractions 0.25, 0.5, 0.75 (~40 min)
    python -m benchmarks.surrogate_data --fractions 0.5 --splits 2

Each split holds out the same 20% of the trainings outside the table as
``benchmarks/surrogate_models.py``; of the other trainings outside the table a fraction is kept
(a random subset, seeded by the split), the table's seed means always. The full data's scores are
that benchmark's version 1 row. A log-linear fit of Kendall tau against the number of trainings
says how many more the next tenths of tau would take. Results:
``benchmarks/results/surrogate_data.{json,md}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.common import add_results_option, write_results
from benchmarks.surrogate_models import BUILDS, EXTRA, card, held_out
from nasenv.data import DEFAULT_DATASET
from nasenv.surrogate import training_data
from nasenv.table import load_table
from nasenv.tablebuild import finished_trainings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.surrogate_data", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--extra", type=Path, nargs="*", default=[BUILDS / e for e in EXTRA])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--splits", type=int, default=5)
    add_results_option(parser)
    args = parser.parse_args(argv)
    bad = [f for f in args.fractions if not 0.0 < f <= 1.0]
    if bad:
        parser.error(f"--fractions {bad}: each must be in (0, 1]")
    data = training_data(load_table(args.dataset), finished_trainings(args.extra))
    y, outside = data.targets["val_recall"], np.asarray(data.outside)
    inside = np.setdiff1d(np.arange(len(data)), outside)
    rows = []
    for fraction in args.fractions:
        for split in range(args.splits):
            held = held_out(outside, split)
            rest = np.setdiff1d(np.setdiff1d(np.arange(len(data)), held), inside)
            keep = np.random.default_rng(100 + split).permutation(rest)
            keep = keep[: round(fraction * len(rest))]
            archs = [data.archs[i] for i in held]
            train = np.sort(np.concatenate([inside, keep]))
            model, _ = data.fit(train, ["val_recall"], model="ard+mlp")
            parts = model.components(archs)
            predicted = {"ard": parts["ard"], "mlp": parts["mlp"], "v1": model.predict(archs)}
            row = {"fraction": fraction, "outside": len(keep), "split": split}
            row.update({k: card(v, y[held])["kendall_tau"] for k, v in predicted.items()})
            rows.append(row)
            print(row, flush=True)
    write_results(args.results, "surrogate_data", {"rows": rows}, report(rows))


def report(rows: list[dict]) -> str:
    lines = [
        "# The surrogate's order against its data",
        "",
        "| trainings outside the table | ARD kernel ridge | MLP | version 1 (mean) |",
        "| --- | --- | --- | --- |",
    ]
    sizes = sorted({r["outside"] for r in rows})
    means = []
    for size in sizes:
        group = [r for r in rows if r["outside"] == size]
        cells = [f"{np.mean([r[k] for r in group]):.3f}" for k in ("ard", "mlp", "v1")]
        means.append(np.mean([r["v1"] for r in group]))
        lines.append(f"| {size:,} | {' | '.join(cells)} |")
    if len(sizes) > 1:
        slope, _ = np.polyfit(np.log2(sizes), means, 1)
        lines += ["", f"Version 1's tau gains {slope:.3f} per doubling of the trainings."]
        if slope > 0:
            lines.append(
                f"At that rate +0.01 of tau takes {2 ** (0.01 / slope) - 1:.0%} more trainings."
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
