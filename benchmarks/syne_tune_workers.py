"""Parallel workers in simulated time: Syne Tune's schedulers on the table, N = 1, 4, 16.

    pip install syne-tune huggingface_hub      # not a dependency of the package
    python -m benchmarks.syne_tune_workers     # 5 seeds x 3 worker counts x 4 schedulers (~5 min)

The Books-20core table is served to Syne Tune as a ``BlackboxTabular``
(:func:`nasenv.adapters.syne_tune_blackbox`) through its simulated back end
(``UserBlackboxBackend`` with ``SimulatorCallback``). This is Syne Tune's event queue: a started
trial's per-epoch results are scheduled at start + their stored seconds, and a stopped trial's
later events are dropped. The schedulers' own compute is not counted (the simulator's clock
moves with the table's seconds only). Each trial's training seed is drawn by Syne Tune from the
table's three.

Regret after ``t`` simulated seconds is the table's best seed-mean validation Recall@20 minus the
seed-mean score of the incumbent: the architecture with the highest validation Recall@20 reported
so far, at any epoch (what Syne Tune itself reports as best). The seconds are the table's, cost
version 1. Results: ``benchmarks/results/syne_tune_workers.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

import numpy as np

from benchmarks.common import RESULTS
from nasenv.adapters import syne_tune_blackbox
from nasenv.table import load_table

SCHEDULERS = ("random", "rea", "asha", "bohb")
WORKERS = (1, 4, 16)
CHECKPOINTS = (300, 600, 1200, 1800, 3600)
"""Simulated seconds at which regret is reported."""


def scheduler(name: str, space: dict[str, Any], seed: int, max_t: int) -> Any:
    from syne_tune.optimizer import baselines

    common = {"do_minimize": False, "random_seed": seed}
    if name == "random":
        return baselines.RandomSearch(space, metrics=["val_recall"], **common)
    if name == "rea":  # the population and tournament of agents.evolution (NAS-Bench-201's REA)
        return baselines.REA(
            space, metric="val_recall", population_size=10, sample_size=3, **common
        )
    asha = {"time_attr": "epoch", "max_t": max_t, "grace_period": 3, "reduction_factor": 3}
    if name == "asha":
        return baselines.ASHA(space, metric="val_recall", **asha, **common)
    if name == "bohb":
        return baselines.BOHB(space, metric="val_recall", **asha, **common)
    raise ValueError(f"unknown scheduler {name!r}; allowed: {list(SCHEDULERS)}")


def run(name: str, workers: int, seed: int, seconds: float) -> list[tuple[float, str, float]]:
    """``(simulated time, arch, val_recall)`` of every result of one tuning run."""
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository import UserBlackboxBackend

    blackbox = syne_tune_blackbox("Books-20core")
    events: list[tuple[float, str, float]] = []

    class Recorder(SimulatorCallback):
        def on_trial_result(self, trial, status, result, decision):
            super().on_trial_result(trial, status, result, decision)
            events.append((result["st_tuner_time"], trial.config["arch"], result["val_recall"]))

    backend = UserBlackboxBackend(blackbox=blackbox, elapsed_time_attr="elapsed_time", seed=None)
    tuner = Tuner(
        trial_backend=backend,
        scheduler=scheduler(name, blackbox.configuration_space, seed, blackbox.fidelity_values[-1]),
        stop_criterion=StoppingCriterion(max_wallclock_time=seconds),
        n_workers=workers,
        sleep_time=0,
        callbacks=[Recorder()],
        save_tuner=False,
        print_update_interval=10**9,
    )
    np.random.seed(seed)  # noqa: NPY002 - Syne Tune's back end draws trial seeds from it
    tuner.run()
    return events


def regrets(events: list[tuple[float, str, float]], scores: dict[str, float]) -> list[float]:
    best_score = max(scores.values())
    out, incumbent, best, i = [], None, -np.inf, 0
    events = sorted(events)
    for checkpoint in CHECKPOINTS:
        while i < len(events) and events[i][0] <= checkpoint:
            if events[i][2] > best:
                best, incumbent = events[i][2], events[i][1]
            i += 1
        out.append(best_score - scores[incumbent] if incumbent else float("nan"))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.syne_tune_workers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--schedulers", nargs="+", default=list(SCHEDULERS), choices=SCHEDULERS)
    parser.add_argument("--workers", type=int, nargs="+", default=list(WORKERS))
    args = parser.parse_args(argv)
    if min(args.workers) < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    logging.disable(logging.WARNING)  # Syne Tune logs every trial; this script's own process
    table = load_table("Books-20core")
    scores = dict(zip(table.arch_strings, table.scores("recall"), strict=True))
    rows = []
    for name in args.schedulers:
        for workers in args.workers:
            start = time.perf_counter()
            curves = [
                regrets(run(name, workers, 100 + s, CHECKPOINTS[-1]), scores)
                for s in range(args.seeds)
            ]
            rows.append(
                {
                    "scheduler": name,
                    "workers": workers,
                    "runs": args.seeds,
                    "regret": np.mean(curves, axis=0).tolist(),
                    "se": (np.std(curves, axis=0, ddof=1) / np.sqrt(len(curves))).tolist(),
                    "wall_seconds": time.perf_counter() - start,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "syne_tune_workers.json").write_text(json.dumps(rows, indent=1) + "\n")
    header = " | ".join(f"regret @{c // 60} min" for c in CHECKPOINTS)
    lines = [
        f"| scheduler | workers | runs | {header} |",
        "| --- | --- | --- | " + " | ".join("---" for _ in CHECKPOINTS) + " |",
    ]
    for row in rows:
        cells = " | ".join(
            f"{m:.4f} ± {e:.4f}" for m, e in zip(row["regret"], row["se"], strict=True)
        )
        lines.append(f"| {row['scheduler']} | {row['workers']} | {row['runs']} | {cells} |")
    text = "\n".join(lines) + "\n"
    (RESULTS / "syne_tune_workers.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
