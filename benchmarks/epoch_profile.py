"""Where one training epoch's milliseconds go, beside what this machine's dense products reach.

    python -m benchmarks.epoch_profile              # 3 core architectures, Books-20core, 1 thread
    python -m benchmarks.epoch_profile --epochs 5 --threads 2
    python -m benchmarks.epoch_profile --pairs 5     # malloc kept or not: alternating processes

For each architecture: one warm-up epoch, then ``--epochs`` epochs at the tabulation batch size
timed without the profiler (the wall time per epoch, validation included, as the trainer charges
it), then the same epochs under ``torch.profiler`` (without the inference-latency passes that follow
a training). The profile is grouped into what the trainer
does: the sparse products forward and backward (the package's ``_SymmetricSpMM``), the row
gathers and their scatter-add backward (``_GatherRows``), the optimiser (Adam's ``step`` and
``zero_grad``), negative sampling, the validation and test rankings, and the rest (the loss, the
penalty, concatenations, the layer combination, PyG's layer code and Python) as the remainder.

Rates: a sparse product of the training graph does ``2 * nnz * dim`` floating-point operations;
its achieved GFLOP/s is set beside a dense ``(n_nodes x d) @ (d x dim)`` product with
``d = nnz / n_nodes`` (the same operations, measured in the same run) and beside the ranking's
own dense ``users x dim @ dim x items`` product. Results go to
``benchmarks/results/epoch_profile.{json,md}`` (with ``--keep-freed-memory``, which tunes
``malloc`` first as the package's own processes do, ``epoch_profile-kept.{json,md}``).
``--pairs N`` measures :func:`nasenv.allocator.keep_freed_memory` instead: N pairs of fresh
processes, alternating without and with it, each training the first architecture for
``--epochs`` epochs after a one-epoch warm-up and reporting its wall seconds, minor page faults
and system CPU seconds (``epoch_profile-pairs.{json,md}``).

Run it on an otherwise idle machine (pause a table build with ``kill -STOP``): every number is a
wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

import nasenv.train
from benchmarks.common import add_results_option, write_results
from nasenv.allocator import keep_freed_memory
from nasenv.cli import LIGHTGCN
from nasenv.data import DEFAULT_DATASET, load_dataset
from nasenv.models import GraphRecommender
from nasenv.results import FIDELITIES, TrainConfig
from nasenv.space import Architecture
from nasenv.train import TrainingContext, train_architecture

ARCHS = (
    LIGHTGCN,
    "layers=gcn-gcn,combine=concat,dim=64,items=id+text,loss=bpr,lr=0.02,reg=0.0001",
    "layers=sage:mean-lgconv,combine=last,dim=64,items=id,loss=bce,lr=0.02,reg=0.0001",
)
GROUPS = {
    "sparse product, forward": ("_SymmetricSpMM",),
    "sparse product, backward": ("_SymmetricSpMMBackward",),
    "row gathers and their backward": ("_GatherRows", "_GatherRowsBackward"),
    "optimiser (Adam)": ("Optimizer.step#Adam.step", "Optimizer.zero_grad#Adam.zero_grad"),
    "negative sampling": ("recnas/negatives",),
    "validation ranking": ("recnas/validation",),
    "test ranking (not charged)": ("recnas/test",),
}


class _Labelled:
    """``callable`` run inside a ``record_function(label)`` range (for the profile only)."""

    def __init__(self, inner: Any, label: str) -> None:
        self.inner, self.label = inner, label

    def __call__(self, *args: Any) -> Any:
        with record_function(self.label):
            return self.inner(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def dense_gflops(rows: int, inner: int, cols: int, repeats: int = 5) -> float:
    """GFLOP/s of a dense ``(rows x inner) @ (inner x cols)`` float32 product, median time."""
    a, b = torch.randn(rows, inner), torch.randn(inner, cols)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * rows * inner * cols / statistics.median(times) / 1e9


def profile_arch(arch: Architecture, context: TrainingContext, epochs: int) -> dict[str, Any]:
    config = TrainConfig(
        max_epochs=epochs, patience=epochs, batch_size=FIDELITIES["tabulation"].batch_size
    )
    train_architecture(arch, context, 0, TrainConfig(max_epochs=1, patience=1))  # warm-up
    result = train_architecture(arch, context, 0, config)
    epoch_ms = 1000 * result.epoch_seconds[-1] / len(result.epoch_seconds)
    test_ms = 1000 * result.epoch_test_seconds[-1] / len(result.epoch_seconds)
    measure_inference = nasenv.train._inference_ms

    def no_inference(model: GraphRecommender, ctx: TrainingContext, repeats: int = 3) -> float:
        return float("nan")  # the epochs only

    nasenv.train._inference_ms = no_inference
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            train_architecture(arch, context, 0, config)
    finally:
        nasenv.train._inference_ms = measure_inference
    averages = {event.key: event for event in prof.key_averages()}
    groups = {
        group: sum(averages[n].cpu_time_total for n in names if n in averages) / 1000 / epochs
        for group, names in GROUPS.items()
    }
    profiled_ms = prof.key_averages().self_cpu_time_total / 1000 / epochs
    groups["the rest: loss, penalty, concatenation, layers' code, Python"] = max(
        profiled_ms - sum(groups.values()), 0.0
    )
    labelled = {name for names in GROUPS.values() for name in names}
    rest: dict[str, float] = {}
    for event in prof.events():
        parent, inside = event, False
        while parent is not None and not inside:
            inside = parent.name in labelled
            parent = parent.cpu_parent
        if not inside:
            rest[event.name] = rest.get(event.name, 0.0) + event.self_cpu_time_total / 1000 / epochs
    top_rest = dict(sorted(rest.items(), key=lambda kv: -kv[1])[:8])
    spmm_calls = sum(
        averages[n].count for n in ("_SymmetricSpMM", "_SymmetricSpMMBackward") if n in averages
    )
    graph = context.graph
    nnz = int(graph.norm.values().numel())
    spmm_ms = sum(groups[g] for g in ("sparse product, forward", "sparse product, backward"))
    flops = 2 * nnz * arch.dim * spmm_calls / epochs
    return {
        "arch": arch.to_string(),
        "epoch_ms": epoch_ms,
        "test_ms": test_ms,
        "profiled_ms": profiled_ms,
        "groups_ms": groups,
        "spmm_per_epoch": spmm_calls / epochs,
        "spmm_gflops": flops / (spmm_ms / 1000) / 1e9 if spmm_ms else float("nan"),
        "val_recall": list(result.val_recall),
        "rest_by_op_ms": top_rest,
    }


PAIR_RUN = """
import json, resource, sys, time
import torch
from nasenv.allocator import keep_freed_memory
from nasenv.data import load_dataset
from nasenv.results import TrainConfig
from nasenv.space import Architecture
from nasenv.train import TrainingContext, train_architecture

dataset, arch, epochs, threads, kept = sys.argv[1:6]
epochs, threads, kept = int(epochs), int(threads), kept == "1"
torch.set_num_threads(threads)
if kept:
    keep_freed_memory()
context = TrainingContext(load_dataset(dataset))
arch = Architecture.from_string(arch)
train_architecture(arch, context, 0, TrainConfig(max_epochs=1, patience=1))
before = resource.getrusage(resource.RUSAGE_SELF)
start = time.perf_counter()
result = train_architecture(arch, context, 0, TrainConfig(max_epochs=epochs, patience=epochs))
wall = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"kept": kept, "wall": wall, "faults": after.ru_minflt - before.ru_minflt,
                  "system": after.ru_stime - before.ru_stime, "val_recall": result.val_recall}))
"""


def pairs(dataset: str, arch: str, epochs: int, threads: int, n: int) -> list[dict[str, Any]]:
    """``n`` alternating pairs of fresh processes without and with the malloc settings."""
    import subprocess
    import sys

    rows = []
    for _ in range(n):
        for kept in ("0", "1"):
            command = [sys.executable, "-c", PAIR_RUN, dataset, arch, str(epochs), str(threads)]
            out = subprocess.run([*command, kept], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def pairs_report(rows: list[dict[str, Any]], args: argparse.Namespace, arch: str) -> str:
    def median(kept: bool, key: str) -> float:
        return statistics.median(r[key] for r in rows if r["kept"] == kept)

    base = [r for r in rows if not r["kept"]]
    kept = [r for r in rows if r["kept"]]
    faster = sum(k["wall"] < b["wall"] for b, k in zip(base, kept, strict=True))
    same = all(k["val_recall"] == base[0]["val_recall"] for k in rows)
    lines = [
        "# Keeping freed memory: alternating processes",
        "",
        f"`python -m benchmarks.epoch_profile --pairs {len(base)} --epochs {args.epochs} "
        f"--threads {args.threads}` on {args.dataset}: {arch}, {args.epochs} epochs after a "
        "warm-up epoch, each run a fresh process.",
        "",
        "| malloc | median wall s | range | median page faults | median system s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, flag, group in (("as glibc sets it", False, base), ("kept", True, kept)):
        walls = [r["wall"] for r in group]
        lines.append(
            f"| {label} | {median(flag, 'wall'):.2f} | {min(walls):.2f}-{max(walls):.2f} | "
            f"{median(flag, 'faults'):,.0f} | {median(flag, 'system'):.2f} |"
        )
    lines += [
        "",
        f"Kept was faster in {faster} of {len(base)} pairs; the validation curves were "
        f"{'identical in every run' if same else 'NOT identical'}.",
        "",
    ]
    return "\n".join(lines)


def report(record: dict[str, Any]) -> str:
    kept = " --keep-freed-memory" if record["keep_freed_memory"] else ""
    lines = [
        "# Where an epoch's time goes",
        "",
        f"`python -m benchmarks.epoch_profile --epochs {record['epochs']} --threads "
        f"{record['threads']}{kept}` on {record['dataset']} ({record['nodes']:,} nodes, "
        f"{record['nnz']:,} nonzeros in the normalised adjacency); torch {record['torch']}.",
        "",
        f"Dense float32 products here: {record['dense_same_flops_gflops']:.1f} GFLOP/s for a "
        f"({record['nodes']:,} x {record['avg_degree']}) @ ({record['avg_degree']} x 64) product "
        f"(the operations of one sparse product), {record['ranking_gflops']:.1f} GFLOP/s for the "
        f"ranking's ({record['users']:,} x 64) @ (64 x {record['items']:,}).",
        "",
    ]
    for row in record["archs"]:
        lines += [
            f"**{row['arch']}**: {row['epoch_ms']:.0f} ms per epoch unprofiled (training and "
            f"validation, as charged; the test ranking {row['test_ms']:.0f} ms more), "
            f"{row['profiled_ms']:.0f} ms profiled. Sparse products: {row['spmm_per_epoch']:.0f} "
            f"per epoch at {row['spmm_gflops']:.2f} GFLOP/s.",
            "",
            "| part | ms per epoch (profiled) | share |",
            "| --- | --- | --- |",
        ]
        total = sum(row["groups_ms"].values())
        for group, ms in row["groups_ms"].items():
            lines.append(f"| {group} | {ms:.0f} | {ms / total:.0%} |")
        rest = ", ".join(f"`{op}` {ms:.0f}" for op, ms in row["rest_by_op_ms"].items())
        lines += ["", f"The rest by operation (self ms per epoch): {rest}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.epoch_profile", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--arch", action="append", help="architecture (repeatable; default: 3)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="tune malloc first, as the package's commands and workers do (nasenv.allocator)",
    )
    parser.add_argument("--pairs", type=int, help="compare malloc settings in N process pairs")
    add_results_option(parser)
    args = parser.parse_args(argv)
    if args.pairs:
        arch = (args.arch or ARCHS)[0]
        rows = pairs(args.dataset, arch, args.epochs, args.threads, args.pairs)
        write_results(args.results, "epoch_profile-pairs", rows, pairs_report(rows, args, arch))
        return
    torch.set_num_threads(args.threads)
    if args.keep_freed_memory:
        keep_freed_memory()
    context = TrainingContext(load_dataset(args.dataset))
    context.sampler = _Labelled(context.sampler, "recnas/negatives")  # type: ignore[assignment]
    context.val_eval = _Labelled(context.val_eval, "recnas/validation")  # type: ignore[assignment]
    context.test_eval = _Labelled(context.test_eval, "recnas/test")  # type: ignore[assignment]
    graph, data = context.graph, context.dataset
    nnz = int(graph.norm.values().numel())
    degree = max(1, round(nnz / graph.n_nodes))
    record: dict[str, Any] = {
        "dataset": data.name,
        "epochs": args.epochs,
        "threads": args.threads,
        "keep_freed_memory": args.keep_freed_memory,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "nodes": graph.n_nodes,
        "nnz": nnz,
        "avg_degree": degree,
        "users": data.n_users,
        "items": data.n_items,
        "dense_same_flops_gflops": dense_gflops(graph.n_nodes, degree, 64),
        "ranking_gflops": dense_gflops(data.n_users, 64, data.n_items),
        "archs": [],
    }
    for text in args.arch or ARCHS:
        record["archs"].append(profile_arch(Architecture.from_string(text), context, args.epochs))
        print(json.dumps(record["archs"][-1]), flush=True)
    stem = "epoch_profile-kept" if args.keep_freed_memory else "epoch_profile"
    write_results(args.results, stem, record, report(record))


if __name__ == "__main__":
    main()
