"""Fit the full-space surrogate on a task's table plus extra trainings outside it.

    python scripts/fit_surrogate.py             # Books-20core table + the full-space sample build
    python scripts/fit_surrogate.py --extra DIR # other build directories of extra trainings

Reports held-out Kendall tau and Spearman (20% of the architectures left out of a fit), then fits
on everything and writes ``nasenv/tables/<slug>-surrogate.npz`` and its SHA-256.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nasenv.data import DEFAULT_DATASET, write_checksums
from nasenv.surrogate import Surrogate, holdout_quality, surrogate_filename, training_data
from nasenv.table import TABLE_DIR, load_table
from nasenv.tablebuild import ShardStore

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument(
        "--extra",
        type=Path,
        nargs="*",
        default=[ROOT / "benchmarks/table-build/Books-20core-full-sample500-no-core"],
        help="build directories of single trainings to add (finished ones are used)",
    )
    parser.add_argument("--out", type=Path, default=TABLE_DIR)
    args = parser.parse_args(argv)

    table = load_table(args.dataset)
    extra = []
    for directory in args.extra:
        if (directory / ShardStore.PLAN_FILE).exists():
            extra += list(ShardStore.open(directory).results())
    archs, targets, noise = training_data(table, extra)
    quality = holdout_quality(archs, targets, noise)
    print(f"{len(archs)} architectures ({len(extra)} outside the table); seed noise {noise:.4f}")
    print(
        f"held-out ({quality['held_out']}): Kendall tau {quality['kendall_tau']:.3f}, "
        f"Spearman {quality['spearman']:.3f}"
    )
    meta = {"dataset": args.dataset, "table": table.source, "extra": len(extra), **quality}
    surrogate, reports = Surrogate.fit(archs, targets, noise, meta)
    path = args.out / surrogate_filename(args.dataset)
    surrogate.save(path)
    write_checksums(args.out)
    for name, report in reports.items():
        print(
            f"{name:12} gamma {report.gamma:g} ridge {report.ridge:g} "
            f"CV tau {report.kendall_tau:.3f}"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
