"""Top-k latency of a final model: one user per call, and every user in one batch.

    python -m benchmarks.recommend_latency --threads 1                 # trains LightGCN-3, 1 seed
    python -m benchmarks.recommend_latency --model lightgcn.npz        # trained once, then loaded
    python -m benchmarks.recommend_latency --seeds 3 --threads 2

Trains the final model of ``--arch`` (default LightGCN-3) on ``--dataset`` with
:func:`nasenv.export.train_final` (``--seeds`` fresh seeds, the converged budget), or loads it
from ``--model`` where that file exists (and writes it there after training where it does not).
Then measures :meth:`nasenv.export.FinalModel.recommend` with ``-k`` items, every known
interaction of the user left out:

* one user per call: the median (and 90th percentile) over ``--users`` users drawn without
  replacement (seed 0), after a warm-up call that builds the seen-item sets (timed apart);
* every user in one call (chunked inside): the median over ``--repeats`` calls;
* for comparison, one graph propagation of the rebuilt module (what recommending would cost
  without the stored representations), the median over ``--repeats``.

Writes ``benchmarks/results/recommend_latency.json`` and ``.md`` (``--results`` elsewhere; on
another task than the default, ``recommend_latency-<task>.json`` and ``.md``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import add_results_option, write_results
from nasenv.cli import LIGHTGCN
from nasenv.data import DEFAULT_DATASET, load_dataset
from nasenv.evaluators import fresh_seeds
from nasenv.export import FinalModel, load_model, train_final
from nasenv.results import FIDELITIES


def final_model(args: argparse.Namespace) -> tuple[FinalModel, dict[str, Any]]:
    """The model to measure, and how it was obtained (trained, with its seconds, or loaded)."""
    dataset = load_dataset(args.dataset)
    if args.model is not None and args.model.exists():
        start = time.perf_counter()
        model = load_model(args.model, dataset)
        return model, {"loaded_from": str(args.model), "load_s": time.perf_counter() - start}
    start = time.perf_counter()
    model = train_final(
        args.arch, dataset, fresh_seeds(args.seeds), FIDELITIES[args.fidelity], args.threads
    )
    how: dict[str, Any] = {"trained_s": time.perf_counter() - start, "fidelity": args.fidelity}
    if args.model is not None:
        model.save(args.model)
        how["saved_to"] = str(args.model)
    return model, how


def measure(model: FinalModel, k: int, n_users: int, repeats: int) -> dict[str, float]:
    """Seconds of the calls described in the module docstring."""
    start = time.perf_counter()
    model.recommend(model.user_ids[0], k=k)  # builds the seen-item sets and tensors once
    first = time.perf_counter() - start
    rng = np.random.default_rng(0)
    users = rng.choice(model.user_ids, size=min(n_users, len(model.user_ids)), replace=False)
    single = []
    for user in users:
        start = time.perf_counter()
        model.recommend(user, k=k)
        single.append(time.perf_counter() - start)
    batch = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.recommend(None, k=k)
        batch.append(time.perf_counter() - start)
    module = model.to_module()
    propagation = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            module()
            propagation.append(time.perf_counter() - start)
    return {
        "first_call_s": first,
        "one_user_median_ms": statistics.median(single) * 1e3,
        "one_user_p90_ms": float(np.percentile(single, 90)) * 1e3,
        "one_user_users": len(users),
        "all_users_median_s": statistics.median(batch),
        "all_users_per_user_us": statistics.median(batch) / len(model.user_ids) * 1e6,
        "propagation_median_ms": statistics.median(propagation) * 1e3,
    }


def report(record: dict[str, Any]) -> str:
    t, m = record["timings"], record["model"]
    return "\n".join(
        [
            "# Top-k latency of a final model",
            "",
            f"`{record['command']}`",
            "",
            f"{m['arch']} on {record['dataset']} ({record['n_users']:,} users, "
            f"{record['n_items']:,} items), seed {m['seed']}: validation Recall@20 "
            f"{m['val_recall']:.4f}, test Recall@20 {m['test_recall']:.4f}. "
            f"Top-{record['k']}, every known interaction left out; torch {record['torch']}, "
            f"{record['threads']} thread(s), load average {record['load_average']:.2f} "
            f"at the start ({record['cpus']} CPUs).",
            "",
            "| measurement | value |",
            "| --- | --- |",
            f"| one user per call, median ({t['one_user_users']} users) | "
            f"{t['one_user_median_ms']:.3f} ms |",
            f"| one user per call, 90th percentile | {t['one_user_p90_ms']:.3f} ms |",
            f"| every user in one call, median | {t['all_users_median_s'] * 1e3:.1f} ms "
            f"({t['all_users_per_user_us']:.1f} µs per user) |",
            f"| first call (builds the seen-item sets) | {t['first_call_s'] * 1e3:.1f} ms |",
            f"| one graph propagation (not needed to recommend) | "
            f"{t['propagation_median_ms']:.1f} ms |",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.recommend_latency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--arch", default=LIGHTGCN, help="architecture (default LightGCN-3)")
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--seeds", type=int, default=1, help="fresh seeds to train (default 1)")
    parser.add_argument("--fidelity", default="converged", choices=list(FIDELITIES))
    parser.add_argument("--model", type=Path, help="load the model here if it exists, else save")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("-k", type=int, default=10, help="items per user (default 10)")
    parser.add_argument("--users", type=int, default=500, help="users timed one by one")
    parser.add_argument("--repeats", type=int, default=5, help="calls of the batch timings")
    add_results_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    model, how = final_model(args)
    timings = measure(model, args.k, args.users, args.repeats)
    result = model.result
    record = {
        "command": " ".join(["python -m benchmarks.recommend_latency", *sys.argv[1:]]),
        "dataset": model.dataset_name,
        "n_users": model.dataset.n_users,
        "n_items": model.dataset.n_items,
        "k": args.k,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "load_average": load,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "model": {
            "arch": model.arch.to_string(),
            "seed": model.seed,
            "epochs": len(result.val_recall),
            "best_epoch": result.best_epoch,
            "val_recall": result.val_recall_best,
            "test_recall": result.test_recall,
            **how,
        },
        "timings": timings,
    }
    stem = "recommend_latency" + (
        "" if args.dataset == DEFAULT_DATASET else f"-{args.dataset.lower()}"
    )
    write_results(args.results, stem, record, report(record))


if __name__ == "__main__":
    main()
