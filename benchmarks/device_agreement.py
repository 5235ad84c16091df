"""How GPU trainings compare with CPU ones, and with themselves: the numbers behind "a GPU build
is its own build".

    python -m benchmarks.device_agreement        # seconds; reads committed builds only

Three comparisons of best validation Recall@20 (and NDCG@20) over the ``(architecture, seed)``
trainings two builds share (a failed training counts 0; no test value is read):

* **GPU repeat**: the GPU build against a second run of the same plan on the same kind of device
  (``--repeat``; the first loan's second command retrained the shards of its first), i.e. how
  deterministic a CUDA training is;
* **GPU against CPU**: the GPU build against the CPU build of the same task (``--cpu``; the core
  architectures are part of ``core-v1`` under the same strings), same seed;
* **CPU seed against CPU seed** (the yardstick): the CPU build's seed ``s`` against seed ``s + 1``
  on the same architectures, i.e. what changing the seed alone moves.

Each reports the pairs, the share bit-identical, the median and largest absolute difference, the
mean difference (with its standard error: a bias of the device), Kendall tau and Spearman; and the
share of GPU-CPU differences within the architecture's CPU seed standard deviation. Then the median
seconds per training and per epoch on each device for the shared pairs. Writes
``benchmarks/results/device_agreement.{json,md,png}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import add_plot_option, add_results_option, write_results
from nasenv.results import FAILED_SCORE, TrainResult
from nasenv.surrogate import kendall_tau, spearman
from nasenv.tablebuild import ShardStore, Task

BUILDS = Path("benchmarks/table-build")
GPU = BUILDS / "Books-20core-core-v1-cuda"
REPEAT = Path("benchmarks/results/device-repeat/Books-20core-core-v1-cuda")
CPU = BUILDS / "Books-20core"
METRICS = ("val_recall_best", "val_ndcg_best")


def load(directory: Path) -> dict[Task, TrainResult]:
    """Every finished training of the build in ``directory``, by ``(architecture, seed)``."""
    return {(r.arch, r.seed): r for r in ShardStore.open(directory).results()}


def score(result: TrainResult, metric: str) -> float:
    return float(getattr(result, metric)) if result.ok else FAILED_SCORE


def compare(a: list[TrainResult], b: list[TrainResult]) -> dict[str, Any]:
    """Agreement of paired trainings ``a[i]``, ``b[i]`` on each metric."""
    out: dict[str, Any] = {"pairs": len(a)}
    for metric in METRICS:
        x = np.array([score(r, metric) for r in a])
        y = np.array([score(r, metric) for r in b])
        d = x - y
        out[metric] = {
            "identical": float(np.mean(x == y)),
            "median_abs": float(np.median(np.abs(d))),
            "max_abs": float(np.max(np.abs(d))),
            "mean": float(d.mean()),
            "mean_se": float(d.std(ddof=1) / np.sqrt(len(d))),
            "kendall_tau": kendall_tau(x, y),
            "spearman": spearman(x, y),
        }
    return out


def seed_stds(cpu: dict[Task, TrainResult], archs: list[str], metric: str) -> dict[str, float]:
    """Each of ``archs``' standard deviation of ``metric`` over the seeds of ``cpu``."""
    values: dict[str, list[float]] = {a: [] for a in archs}
    for (arch, _), result in cpu.items():
        if arch in values:
            values[arch].append(score(result, metric))
    return {a: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan") for a, v in values.items()}


def report(gpu_dir: Path, repeat_dir: Path, cpu_dir: Path) -> dict[str, Any]:
    gpu, repeat, cpu = load(gpu_dir), load(repeat_dir), load(cpu_dir)
    twice = sorted(set(gpu) & set(repeat))
    both = sorted(set(gpu) & set(cpu))
    if not twice or not both:
        raise SystemExit(
            f"no shared trainings: {len(twice)} with the repeat, {len(both)} with the CPU"
        )
    archs = sorted({a for a, _ in both})
    seeds = sorted({s for _, s in cpu})
    following = {s: seeds[(i + 1) % len(seeds)] for i, s in enumerate(seeds)}
    next_seed = [((a, s), (a, following[s])) for a, s in both if (a, following[s]) in cpu]
    by_seed = compare([cpu[k] for k, _ in next_seed], [cpu[k] for _, k in next_seed])
    gpu_cpu = compare([gpu[k] for k in both], [cpu[k] for k in both])
    for metric in METRICS:
        spread = seed_stds(cpu, archs, metric)
        inside = [abs(score(gpu[k], metric) - score(cpu[k], metric)) <= spread[k[0]] for k in both]
        gpu_cpu[metric]["within_seed_std"] = float(np.mean(inside))
        gpu_cpu[metric]["median_seed_std"] = float(np.nanmedian(list(spread.values())))
    speed = {}
    for name, store in (("gpu", gpu), ("cpu", cpu)):
        runs = [store[k] for k in both if store[k].ok]
        speed[name] = {
            "device": runs[0].device,
            "median_train_seconds": float(np.median([r.train_seconds for r in runs])),
            "median_epoch_seconds": float(
                np.median([np.diff((0.0, *r.epoch_seconds)).mean() for r in runs])
            ),
        }
    return {
        "builds": {"gpu": str(gpu_dir), "repeat": str(repeat_dir), "cpu": str(cpu_dir)},
        "gpu_trainings": len(gpu),
        "architectures_shared_with_cpu": len(archs),
        "gpu_repeat": compare([gpu[k] for k in twice], [repeat[k] for k in twice]),
        "gpu_cpu": gpu_cpu,
        "cpu_seed_to_seed": by_seed,
        "speed": speed,
        "_pairs": {
            "repeat": [[score(gpu[k], METRICS[0]), score(repeat[k], METRICS[0])] for k in twice],
            "cpu": [[score(gpu[k], METRICS[0]), score(cpu[k], METRICS[0])] for k in both],
        },
    }


def markdown(record: dict[str, Any]) -> str:
    rows = [
        ("GPU run against its repeat, same seed", record["gpu_repeat"]),
        ("GPU against CPU, same seed", record["gpu_cpu"]),
        ("CPU seed against the next CPU seed", record["cpu_seed_to_seed"]),
    ]
    lines = [
        f"GPU build `{record['builds']['gpu']}`: {record['gpu_trainings']} trainings; "
        f"{record['architectures_shared_with_cpu']} architectures shared with the CPU build "
        f"`{record['builds']['cpu']}`.",
        "",
        "| comparison | metric | pairs | identical | median abs diff | max abs diff | "
        "mean diff (se) | Kendall tau | Spearman |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows:
        for metric in METRICS:
            m = r[metric]
            cells = [
                name,
                metric.removesuffix("_best"),
                str(r["pairs"]),
                f"{m['identical']:.1%}",
                f"{m['median_abs']:.5f}",
                f"{m['max_abs']:.5f}",
                f"{m['mean']:+.5f} ({m['mean_se']:.5f})",
                f"{m['kendall_tau']:.3f}",
                f"{m['spearman']:.3f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for metric in METRICS:
        m = record["gpu_cpu"][metric]
        lines.append(
            f"GPU-CPU differences within the architecture's CPU seed std ({metric}): "
            f"{m['within_seed_std']:.1%} (median seed std {m['median_seed_std']:.5f})."
        )
    lines.append("")
    for name, s in record["speed"].items():
        lines.append(
            f"{name.upper()} ({s['device']}): median {s['median_train_seconds']:.1f} s per "
            f"training, {s['median_epoch_seconds']:.2f} s per epoch, on the shared pairs."
        )
    return "\n".join(lines) + "\n"


def plot(record: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    panels = (("repeat", "GPU repeat"), ("cpu", "CPU, same seed"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        pairs = np.array(record["_pairs"][key])
        ax.scatter(pairs[:, 1], pairs[:, 0], s=6, alpha=0.5)
        lo, hi = pairs.min(), pairs.max()
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        ax.set_xlabel(f"{label}: best validation Recall@20")
        ax.set_ylabel("GPU build: best validation Recall@20")
        ax.set_title(f"{len(pairs)} pairs")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.device_agreement", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--gpu", type=Path, default=GPU, help=f"the GPU build (default {GPU})")
    parser.add_argument(
        "--repeat", type=Path, default=REPEAT, help=f"its repeat (default {REPEAT})"
    )
    parser.add_argument("--cpu", type=Path, default=CPU, help=f"the CPU build (default {CPU})")
    add_results_option(parser)
    add_plot_option(parser)
    args = parser.parse_args(argv)
    record = report(args.gpu, args.repeat, args.cpu)
    pairs = record.pop("_pairs")
    write_results(args.results, "device_agreement", record, markdown(record))
    if not args.no_plot:
        plot({**record, "_pairs": pairs}, args.results / "device_agreement.png")


if __name__ == "__main__":
    main()
