"""Where one training epoch's milliseconds go, beside what this machine's dense products reach.

    python -m benchmarks.epoch_profile              # 3 core architectures, Books-20core, 1 thread
    python -m benchmarks.epoch_profile --epochs 5 --threads 2

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
``benchmarks/results/epoch_profile.{json,md}``.
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
from benchmarks.common import add_results_option
from nasenv.cli import LIGHTGCN
from nasenv.data import DEFAULT_DATASET, load_dataset
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
    nasenv.train._inference_ms = lambda model, ctx: float("nan")  # the epochs only
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


def report(record: dict[str, Any]) -> str:
    lines = [
        "# Where an epoch's time goes",
        "",
        f"`python -m benchmarks.epoch_profile --epochs {record['epochs']} --threads "
        f"{record['threads']}` on {record['dataset']} ({record['nodes']:,} nodes, "
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
    add_results_option(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
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
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "epoch_profile.json").write_text(json.dumps(record, indent=1) + "\n")
    text = report(record)
    (args.results / "epoch_profile.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
