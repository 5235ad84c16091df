"""Retrain random entries of a shipped table and compare them with the stored values.

    python scripts/validate_table.py                    # 10 random entries of Books-20core
    python scripts/validate_table.py --n 30 --seed 1 --dataset Books-20core
    python scripts/validate_table.py --release 1 --table-seeds 3 4   # release 1's new seeds

Each (architecture, seed) is trained again with the table's budget, one thread per training as
in the build. With the code and CPU software stack that trained it, a training reproduces
exactly; elsewhere (other hardware, BLAS, torch version, or a training protocol that sums in
another order: ``nasenv.results.PROTOCOL_VERSION``) expect differences, and the check that
matters is whether the new value is within the spread of the table's seeds: at most one standard
deviation of the stored seeds away from the stored value.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from tqdm import tqdm

from nasenv.data import DEFAULT_DATASET, load_dataset
from nasenv.table import load_table
from nasenv.tablebuild import check_entries
from nasenv.train import TrainingContext


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--n", type=int, default=10, help="entries to retrain (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the entry draw")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--release", type=int, default=0, help="the table release (default 0)")
    parser.add_argument(
        "--table-seeds", type=int, nargs="+", help="draw entries of these seeds (default: all)"
    )
    args = parser.parse_args(argv)

    table = load_table(args.dataset, release=args.release)
    seeds = args.table_seeds or list(table.seeds)
    unknown = sorted(set(seeds) - set(table.seeds))
    if unknown:
        parser.error(f"--table-seeds {unknown} are not in the table's seeds {list(table.seeds)}")
    rng = np.random.default_rng(args.seed)
    rows = rng.choice(len(table), size=min(args.n, len(table)), replace=False)
    entries = [(int(r), int(rng.choice(seeds))) for r in rows]
    context = TrainingContext(load_dataset(args.dataset))
    checks = []
    for check in tqdm(check_entries(table, context, entries, args.threads), total=len(entries)):
        checks.append(check)
        tqdm.write(
            f"{check.arch}  seed {check.seed}: stored {check.stored:.4f}  live {check.live:.4f}  "
            f"difference {check.difference:+.1e}  seed std {check.seed_std:.4f}"
        )
    diffs = np.abs([c.difference for c in checks])
    exact = int((diffs <= 1e-6).sum())
    within = sum(c.within_seed_spread for c in checks)
    print(
        f"{len(checks)} entries: {exact} reproduced to 1e-6, {within} within the seed spread; "
        f"max |difference| {diffs.max():.2e}, mean {diffs.mean():.2e}"
    )
    return 0 if within == len(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
