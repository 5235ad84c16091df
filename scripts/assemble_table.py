"""Turn a finished table build into the shipped table file and record its SHA-256.

    python scripts/assemble_table.py                    # benchmarks/table-build/Books-20core
    python scripts/assemble_table.py --seeds 0          # only seeds finished for every architecture
    python scripts/assemble_table.py \
        --build benchmarks/table-build/Books-Canada-5core-core-v1-no-core \
        --base benchmarks/table-build/Books-Canada-5core   # core-v1: the encoder decision's table
    python scripts/assemble_table.py --release 1 \
        --more-seeds benchmarks/table-build/Books-20core-seeds3-4   # release 1: seeds 0-4

Writes ``nasenv/tables/<slug>.npz`` (``<slug>-<space>.npz`` for a space other than the core;
``-r<release>`` for a table that a release after 0 ships anew, ``nasenv.table.RELEASES``) and
updates ``nasenv/tables/SHA256SUMS``.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch

from nasenv.data import read_checksums, write_checksums
from nasenv.table import RELEASES, TABLE_DIR, table_filename
from nasenv.tablebuild import ShardStore, assemble

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=Path, default=ROOT / "benchmarks/table-build/Books-20core")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: every seed of the plan")
    parser.add_argument(
        "--base",
        type=Path,
        help="the build of the space that --build excludes (core-v1 without core: the core "
        "build); the table then holds both",
    )
    parser.add_argument(
        "--more-seeds",
        type=Path,
        nargs="+",
        default=[],
        help="builds of other seeds of the same plan; the table holds the seeds of all",
    )
    parser.add_argument(
        "--release", type=int, default=0, help="the table release it belongs to (default 0)"
    )
    parser.add_argument("--out", type=Path, default=TABLE_DIR)
    parser.add_argument(
        "--machine",
        default=f"{platform.machine()} CPU, {os.cpu_count()} cores",
        help="where the trainings ran, for the table's metadata",
    )
    parser.add_argument("--device", default="cpu", help="the device the trainings ran on")
    args = parser.parse_args(argv)

    store = ShardStore.open(args.build)
    plan = store.plan
    if args.release and (plan.dataset, plan.space) not in RELEASES.get(args.release, ()):
        parser.error(
            f"release {args.release} ships no new {plan.space!r} table of {plan.dataset} "
            f"(it keeps {table_filename(plan.dataset, plan.space, args.release)}); see "
            f"nasenv.table.RELEASES"
        )
    more = [ShardStore.open(path) for path in args.more_seeds]
    seed_builds = {
        path.name: list(part.plan.seeds) for path, part in zip(args.more_seeds, more, strict=True)
    }
    if more:
        seed_builds = {args.build.name: list(plan.seeds), **seed_builds}
    table = assemble(
        store,
        tuple(args.seeds) if args.seeds else None,
        ShardStore.open(args.base) if args.base else None,
        more,
        machine=args.machine,
        torch=torch.__version__.split("+")[0],
        device=args.device,
        threads_per_training=1,
        **({"seed_builds": seed_builds} if more else {}),
    )
    filename = table_filename(plan.dataset, plan.space, args.release)
    path = args.out / filename
    table.save(path)
    write_checksums(args.out)
    digest = read_checksums(args.out)[filename]
    print(f"{path}: {table} ({path.stat().st_size / 1e6:.2f} MB, sha256 {digest})")


if __name__ == "__main__":
    main()
