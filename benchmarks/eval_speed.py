"""Speed, fidelity and seed noise of one evaluation, on random core architectures.

    python -m benchmarks.eval_speed                 # 30 archs, Books-20core; resumable
    python -m benchmarks.eval_speed --report-only   # recompute the report from stored runs

Phase 1 trains every sampled architecture once (seed 0) to convergence (``--long-epochs``,
``--long-patience``). Because training never depends on the stopping rule, every cheaper fidelity
(max epochs E, patience P) is an exact prefix of that run (``TrainResult.at_fidelity``), so one long
run per architecture measures the rank correlation of all fidelities with the converged result.
Phase 2 trains seeds 1 and 2 at the tabulation fidelity for the seed noise.

Runs are appended to ``benchmarks/results/eval_speed.jsonl`` as they finish (a killed run loses
only the evaluation in progress); the report goes to stdout and ``eval_speed.md`` beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr
from tqdm import tqdm

from benchmarks.common import RESULTS
from nasenv.data import load_dataset
from nasenv.results import FIDELITIES, TrainConfig, TrainResult
from nasenv.space import CORE, Architecture
from nasenv.train import TrainingContext, train_architecture

TABULATION = {
    "max_epochs": FIDELITIES["tabulation"].max_epochs,
    "patience": FIDELITIES["tabulation"].patience,
}
GRID_EPOCHS = (5, 10, 15, 20, 30, 40)
GRID_PATIENCE = (2, 3, 5)


def load_runs(path: Path) -> dict[tuple[str, int, int], TrainResult]:
    runs = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                result = TrainResult.from_dict(json.loads(line))
                runs[(result.arch, result.seed, result.config.max_epochs)] = result
    return runs


def run(jobs: list[tuple[str, int, TrainConfig]], context: TrainingContext, path: Path) -> None:
    done = load_runs(path)
    todo = [job for job in jobs if (job[0], job[1], job[2].max_epochs) not in done]
    for arch, seed, config in tqdm(todo, desc="evaluations", unit="arch"):
        result = train_architecture(Architecture.from_string(arch), context, seed, config)
        with open(path, "a") as handle:
            handle.write(json.dumps(result.to_dict()) + "\n")


def score(result: TrainResult) -> float:
    """Validation Recall@20 used for ranking; a failed run ranks last."""
    return result.val_recall_best if result.ok else 0.0


def report(archs: list[str], runs: dict, long_epochs: int) -> str:
    archs = [a for a in archs if (a, 0, long_epochs) in runs]  # a partial report while running
    long = [runs[(a, 0, long_epochs)] for a in archs]
    truth = [score(r) for r in long]
    lines = [
        f"Architectures: {len(archs)} random core architectures (seed 0 for phase 1).",
        f"Converged runs: median {statistics.median(r.epoch_seconds[-1] for r in long):.1f} s, "
        f"median {statistics.median(len(r.val_recall) for r in long)} epochs; "
        f"{sum(not r.ok for r in long)} failed.",
        "",
        "| max epochs | patience | Spearman | Kendall tau | median s/eval | max s/eval |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for epochs in GRID_EPOCHS:
        for patience in GRID_PATIENCE:
            cheap = [r.at_fidelity(epochs, patience) for r in long]
            values = [score(r) for r in cheap]
            seconds = [r.epoch_seconds[-1] for r in cheap if r.epoch_seconds]
            rho = spearmanr(values, truth).statistic
            tau = kendalltau(values, truth).statistic
            lines.append(
                f"| {epochs} | {patience} | {rho:.3f} | {tau:.3f} | "
                f"{statistics.median(seconds):.1f} | {max(seconds):.1f} |"
            )
    seeds = [
        [
            score(runs[(a, s, TABULATION["max_epochs"])])
            if s
            else score(runs[(a, 0, long_epochs)].at_fidelity(**TABULATION))
            for s in (0, 1, 2)
        ]
        for a in archs
        if all((a, s, TABULATION["max_epochs"]) in runs for s in (1, 2))
    ]
    direct = [
        runs[(a, s, TABULATION["max_epochs"])]
        for a in archs
        for s in (1, 2)
        if (a, s, TABULATION["max_epochs"]) in runs
    ]
    if direct:
        wall = [r.epoch_seconds[-1] for r in direct]
        lines += [
            "",
            f"Runs trained directly at the tabulation fidelity {TABULATION} (seeds 1 and 2, "
            f"{len(direct)} runs): median {statistics.median(wall):.1f} s per evaluation "
            f"(mean {statistics.mean(wall):.1f}, max {max(wall):.1f}), median "
            f"{statistics.median(len(r.val_recall) for r in direct)} epochs.",
        ]
    if seeds:
        matrix = np.array(seeds)
        seed_std = matrix.std(axis=1, ddof=1)
        means = matrix.mean(axis=1)
        lines += [
            "",
            f"Seed noise at the tabulation fidelity {TABULATION} over {len(seeds)} architectures "
            f"x 3 seeds: mean std {seed_std.mean():.4f} (max {seed_std.max():.4f}); spread of "
            f"architecture means: std {means.std(ddof=1):.4f}, range {means.min():.4f}-"
            f"{means.max():.4f}; signal-to-noise (std of means / mean seed std) "
            f"{means.std(ddof=1) / seed_std.mean():.1f}.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.eval_speed", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", default="Books-20core")
    parser.add_argument("--archs", type=int, default=30, help="random core architectures")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--long-epochs", type=int, default=100)
    parser.add_argument("--long-patience", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "eval_speed.jsonl"
    rng = np.random.default_rng(args.sample_seed)
    indices = rng.choice(len(CORE), size=args.archs, replace=False)
    archs = [CORE[int(i)].to_string() for i in indices]
    if not args.report_only:
        context = TrainingContext(load_dataset(args.dataset))
        long = TrainConfig(max_epochs=args.long_epochs, patience=args.long_patience)
        run([(a, 0, long) for a in archs], context, path)
        tab = TrainConfig(**TABULATION)
        run([(a, s, tab) for s in (1, 2) for a in archs], context, path)
    text = report(archs, load_runs(path), args.long_epochs)
    (RESULTS / "eval_speed.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
