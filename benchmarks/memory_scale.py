"""Peak memory of one training against the size of the task, with and without dense masks.

    python -m benchmarks.memory_scale                  # 10^4 .. 10^6 interactions (~10 min)
    python -m benchmarks.memory_scale --sizes 10000 30000 --no-plot
    python -m benchmarks.memory_scale --dataset Books-5core --epochs 3   # a real task

Each point is a synthetic implicit-feedback task with ``n`` interactions: ``n / 20`` users with
20 distinct items each, ``n / 10`` items drawn with a skewed popularity, split per user 60/20/20
like the shipped tasks. So ``users x items`` grows as ``n^2 / 200`` while the interactions grow
as ``n``: 5 * 10^9 cells at 10^6 interactions. One LightGCN-3 (dim 64, ID features) epoch is
trained and evaluated on validation and test in a fresh process, which reports its peak resident
memory (``ru_maxrss``), the seconds of the epoch and of one validation ranking pass.

``layout=sparse`` keeps seen and ground-truth pairs as sorted keys only
(``nasenv.metrics.PairSet``; ``DENSE_CELLS`` set to 0), with scores chunked to ``SCORE_CELLS``:
what the package does above ``DENSE_CELLS`` cells. ``layout=dense`` forces the dense
``users x items`` masks that every task used before (and that the package still adds below
``DENSE_CELLS``, for speed), run only where they fit in memory. The results go to
``benchmarks/results/memory_scale.{json,md,png}``.

``--dataset NAME`` measures a registered task instead (shipped or local: Books-5core is prepared
with ``recnas data prepare Books-5core``), in the layout the package picks for it, for
``--epochs`` epochs; the results go to ``benchmarks/results/memory_scale-<task>.{json,md}``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import resource
import time

import numpy as np

from benchmarks.common import RESULTS, write_results

ARCH = "layers=lgconv-lgconv-lgconv,combine=mean,dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001"
SIZES = (10_000, 30_000, 100_000, 300_000, 1_000_000)
DENSE_LIMIT = 2 * 10**9
"""Largest ``users x items`` at which the dense layout is run (its four masks take 4 bytes a
cell in all, 8 GB here)."""


def synthetic_task(n: int, seed: int = 0):  # -> BooksDataset
    """A task of about ``n`` interactions (see the module docstring)."""
    from nasenv.data import BooksDataset
    from nasenv.prepare import split_per_user

    rng = np.random.default_rng(seed)
    n_users, n_items, per_user = max(10, n // 20), max(40, n // 10), 20
    users = np.repeat(np.arange(n_users), per_user * 2)
    items = (n_items * rng.random(len(users)) ** 2).astype(np.int64)  # popular items first
    keys = np.unique(users * n_items + items)  # distinct pairs, sorted by user
    pairs = np.stack([keys // n_items, keys % n_items], axis=1)
    pairs = pairs[np.lexsort((rng.random(len(pairs)), pairs[:, 0]))]  # shuffled within users
    rank = np.arange(len(pairs)) - np.searchsorted(pairs[:, 0], pairs[:, 0])
    pairs = pairs[rank < per_user]  # at most 20 per user
    train, val, test = split_per_user(pairs, n_users, (0.6, 0.2, 0.2), seed)
    return BooksDataset(
        name=f"synthetic-{n}",
        n_users=n_users,
        n_items=n_items,
        train=train,
        val=val,
        test=test,
        item_text=np.zeros((n_items, 1), np.float32),
        item_isbn=np.array([str(i) for i in range(n_items)]),
        item_title=np.array([""] * n_items),
        item_author=np.array([""] * n_items),
        user_country=np.array([""] * n_users),
        sha256="0" * 64,
    )


def measure(n: int | str, layout: str, queue: multiprocessing.Queue, epochs: int = 1) -> None:
    """In a fresh process: ``epochs`` epochs on the synthetic task of size ``n`` (or on the
    registered task named ``n``, in the package's own layout); puts the measurements."""
    import torch

    import nasenv.metrics
    from nasenv.data import load_dataset
    from nasenv.results import TrainConfig
    from nasenv.space import Architecture
    from nasenv.train import TrainingContext, train_architecture

    torch.set_num_threads(1)
    if layout != "package":
        nasenv.metrics.DENSE_CELLS = 1 << 62 if layout == "dense" else 0
    task = load_dataset(n) if isinstance(n, str) else synthetic_task(n)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    context = TrainingContext(task)
    setup = time.perf_counter() - start
    if layout == "package":
        layout = "dense" if context.val_eval.seen.dense is not None else "sparse"
    config = TrainConfig(max_epochs=epochs, patience=epochs)
    result = train_architecture(Architecture.from_string(ARCH), context, 0, config)
    queue.put(
        {
            "interactions": int(len(task.train) + len(task.val) + len(task.test)),
            "users": task.n_users,
            "items": task.n_items,
            "cells": task.n_users * task.n_items,
            "layout": layout,
            "rss_before_mb": before,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "setup_seconds": setup,
            "epoch_seconds": result.train_seconds / len(result.val_recall),
            "ranking_ms": result.inference_ms,
            "status": result.status,
            "task": task.name,
            "epochs": len(result.val_recall),
            "val_recall": list(result.val_recall),
        }
    )


def run(n: int | str, layout: str, epochs: int = 1) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure, args=(n, layout, queue, epochs))
    process.start()
    row = queue.get()
    process.join()
    return row


def report(rows: list[dict]) -> str:
    lines = [
        "| interactions | users | items | users x items | layout | peak RSS (MB) | "
        "epoch (s) | validation ranking (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['interactions']:,} | {r['users']:,} | {r['items']:,} | {r['cells']:.2e} | "
            f"{r['layout']} | {r['peak_rss_mb']:.0f} | {r['epoch_seconds']:.2f} | "
            f"{r['ranking_ms']:.0f} |"
        )
    sparse = [r for r in rows if r["layout"] == "sparse"]
    for small, large in itertools.pairwise(sparse):
        added = large["interactions"] - small["interactions"]
        grown = large["peak_rss_mb"] - small["peak_rss_mb"]
        lines.append(
            f"\nSparse, {small['interactions']:,} to {large['interactions']:,} interactions: "
            f"{grown:+.0f} MB, {grown * 2**20 / added:.0f} bytes per added interaction, while "
            f"users x items grew {large['cells'] / small['cells']:.0f}x."
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for layout, marker in (("sparse", "o"), ("dense", "s")):
        points = [r for r in rows if r["layout"] == layout]
        if points:
            axis.plot(
                [r["interactions"] for r in points],
                [r["peak_rss_mb"] for r in points],
                marker=marker,
                label=f"{layout} masks",
            )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("interactions (users x items = interactions^2 / 200)")
    axis.set_ylabel("peak resident memory (MB)")
    axis.set_title("One LightGCN-3 epoch with validation and test ranking")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.memory_scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--dataset", help="measure this registered task instead")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of --dataset (default 1)")
    args = parser.parse_args(argv)
    if args.dataset:
        row = run(args.dataset, "package", args.epochs)
        print(json.dumps(row), flush=True)
        text = report([row]) + (
            f"\n{row['task']}: {row['epochs']} epochs of LightGCN-3 (one thread), "
            f"{row['epoch_seconds']:.1f} s per epoch, setup {row['setup_seconds']:.1f} s, "
            f"validation Recall@20 by epoch {[round(v, 4) for v in row['val_recall']]}.\n"
        )
        write_results(RESULTS, f"memory_scale-{args.dataset.lower()}", row, text)
        return
    rows = []
    for n in args.sizes:
        for layout in ("sparse", "dense"):
            if layout == "dense" and (n // 20) * (n // 10) > DENSE_LIMIT:
                continue
            rows.append(run(n, layout))
            print(json.dumps(rows[-1]), flush=True)
    write_results(RESULTS, "memory_scale", rows, report(rows))
    if not args.no_plot:
        plot(rows, RESULTS / "memory_scale.png")


if __name__ == "__main__":
    main()
