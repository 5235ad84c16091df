"""Live search with worker processes: the wall-clock speed-up of N trainings at once.

    python -m benchmarks.live_workers                      # 12 low-budget trainings, ~3 min
    python -m benchmarks.live_workers --evaluations 6 --fidelity low --dataset Books-20core
    python -m benchmarks.live_workers --ray     # also 2 Ray tasks on a local Ray instance

The same random search (seed ``--seed``, the same architectures and training seed 0) runs three
times on ``RecNAS-Books-Live-v0``, each with a fresh cache: in this process with one torch
thread (:func:`agents.runner.run_search`), then with 1 and with 2 worker processes of one
thread each (:func:`agents.parallel.run_parallel`), and with ``--ray`` as Ray tasks on a new
local Ray instance (its start counted). Every run's validation scores must agree
(same trainings, same seeds; checked). The speed-up is the in-process wall seconds over the
parallel run's. Measure on an otherwise idle machine. Writes
``benchmarks/results/live_workers.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from agents.parallel import run_parallel
from agents.random_search import RandomSearch
from agents.runner import Budget, run_search
from benchmarks.common import add_results_option
from nasenv.data import DEFAULT_DATASET
from nasenv.env import RecNASEnv
from nasenv.results import FIDELITIES


def env(dataset: str, fidelity: str, cache: Path) -> RecNASEnv:
    return RecNASEnv(backend="live", dataset=dataset, fidelity=fidelity, cache=str(cache))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--fidelity", default="low", choices=list(FIDELITIES))
    parser.add_argument("--evaluations", type=int, default=12)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ray", action="store_true", help="also the largest N as Ray tasks")
    add_results_option(parser)
    args = parser.parse_args()
    budget = Budget(evaluations=args.evaluations)
    rows: list[dict[str, Any]] = []
    scores: dict[str, list[tuple[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            start = time.perf_counter()
            cache = Path(tmp) / "in-process.sqlite"
            sequential = run_search(
                RandomSearch(seed=args.seed), env(args.dataset, args.fidelity, cache), budget
            )
            wall = time.perf_counter() - start
        finally:
            torch.set_num_threads(previous)
        scores["in-process"] = sorted((t.arch, t.val_recall) for t in sequential.history)
        training = sum(t.cost_seconds for t in sequential.history)
        rows.append({"run": "in-process, 1 thread", "workers": 1, "wall_seconds": wall})
        print(f"in-process: {wall:.1f} s", flush=True)
        runs: list[tuple[int, str | None]] = [(workers, None) for workers in args.workers]
        if args.ray:
            runs.append((max(args.workers), "local"))
        for workers, ray_address in runs:
            name = f"ray-{workers}" if ray_address else f"x{workers}"
            cache = Path(tmp) / f"{name}.sqlite"
            start = time.perf_counter()
            result = run_parallel(
                RandomSearch(seed=args.seed),
                env(args.dataset, args.fidelity, cache),
                budget,
                workers=workers,
                seed=args.seed,
                ray_address=ray_address,
            )
            wall = time.perf_counter() - start
            scores[name] = sorted((f.trial.arch, f.trial.val_recall) for f in result.finished)
            kind = (
                ("Ray task", "Ray tasks") if ray_address else ("worker process", "worker processes")
            )
            rows.append(
                {
                    "run": f"{workers} {kind[workers > 1]}, 1 thread each",
                    "workers": workers,
                    "wall_seconds": wall,
                    "busy": result.utilisation(),
                }
            )
            print(f"{name}: {wall:.1f} s", flush=True)
    same = all(v == scores["in-process"] for v in scores.values())
    base = rows[0]["wall_seconds"]
    lines = [
        f"Live random search on {args.dataset}, {args.evaluations} trainings at the "
        f"{args.fidelity!r} budget (the same architectures and seed in every run; validation "
        f"scores identical across runs: {'yes' if same else 'NO'}), "
        f"{training:.0f} s of training in the in-process run.",
        "",
        "| run | wall s | speed-up | workers busy |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        busy = f"{row['busy']:.0%}" if "busy" in row else "-"
        lines.append(
            f"| {row['run']} | {row['wall_seconds']:.1f} | {base / row['wall_seconds']:.2f}x "
            f"| {busy} |"
        )
    text = "\n".join(lines) + "\n"
    options = {k: v for k, v in vars(args).items() if k != "results"}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "live_workers.md").write_text(text)
    (args.results / "live_workers.json").write_text(
        json.dumps({"args": options, "rows": rows, "identical": same}, indent=1)
    )
    print(text)
    if not same:
        raise SystemExit("the runs' validation scores differ: the speed-up compares other work")


if __name__ == "__main__":
    main()
