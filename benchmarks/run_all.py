"""Every benchmark of the package in one command: speed, the table, the agents, quality.

    python -m benchmarks.run_all --quick     # a few minutes on 2 cores: small runs of everything
    python -m benchmarks.run_all             # the numbers of benchmarks/RESULTS.md (hours)
    python -m benchmarks.run_all --dry-run   # print the commands, run nothing

Runs, in order, each as its own process (so each can also be run alone, with the same command,
``python -m benchmarks.<name> ...`` from the repository root):

1. ``env_throughput``: table-mode env steps/s against FrozenLake-v1, load time and memory,
   and live evaluations timed in the same run; ``cli_speed``: a table search's wall time from
   the command line;
2. ``table_stats``: what the shipped table holds (distribution, seed noise, fidelities);
3. ``run_agents``: every agent x seeds on the table env, regret curves and leaderboard;
   ``unmasked``: plain PPO and DQN without masks, with and without the env's help; the AutoML
   track: ``mo_agents`` (multi-objective search; its PPO rows need the ``mo`` extra),
   ``mo_speed``, ``multifidelity``, ``parallel_workers`` (and ``live_workers``, which trains,
   full runs only); one-shot search (``oneshot``, which
   trains a supernet); what an evaluation costs (``cost_definition``, which trains)
   and memory against the task's size (``memory_scale``, full runs only); the final model's
   top-k latency (``recommend_latency``, which trains LightGCN-3, full runs only).
   ``syne_tune_workers`` needs Syne Tune, which the package does not install, and is not run
   here;
4. ``quality``: the architecture the searches found most often, retrained with fresh seeds,
   against popularity, MF-BPR, LightGCN and GCN-3;
5. ``env_throughput --surrogate`` and ``surrogate_search``: the full-space surrogate env's
   speed, and the architectures agents find on it, trained for real;
6. ``cross_task`` and ``transfer --tune ...`` (and ``--avoid-repeats``): how alike the book
   tasks rank architectures, and transfer from the training tasks to the held-out ones (skipped,
   saying why, while a training task has no table yet; ``--quick`` runs both on the sample
   tables).

Outputs land in ``benchmarks/results/``. Every step resumes where a killed run stopped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchmarks.common import ROOT
from nasenv.data import TRAINING_TASKS
from nasenv.table import shipped_tables


def missing_tables(tasks: tuple[str, ...] = TRAINING_TASKS) -> list[str]:
    """The tasks whose table is not shipped (yet)."""
    shipped = shipped_tables()
    return [task for task in tasks if task not in shipped]


def steps(quick: bool) -> list[list[str]]:
    """The benchmarks to run, in order: a module of ``benchmarks`` and its options each."""
    if quick:
        return [
            [
                *("env_throughput", "--steps", "20000", "--repeats", "3", "--live", "1"),
                *("--out", "benchmarks/results/env_throughput-quick.json"),
            ],
            ["cli_speed", "--runs", "2", "--out", "benchmarks/results/cli_speed-quick.json"],
            ["table_stats"],
            ["run_agents", "--quick"],
            ["unmasked", "--runs", "2", "--budget", "50", "--max-steps", "5000"],
            ["mo_agents", "--table", "sample", "--seeds", "2", "--budget", "30"],
            [
                "mo_speed",
                "--episodes",
                "2000",
                "--repeats",
                "1",
                "--out",
                "benchmarks/results/mo_speed-quick.json",
            ],
            ["multifidelity", "--seeds", "2", "--hours", "0.5", "--name", "multifidelity-quick"],
            [
                *("parallel_workers", "--seeds", "2", "--hours", "0.25", "--agents", "random"),
                *("asha", "--name", "parallel_workers-quick"),
            ],
            ["oneshot", "--table", "sample", "--epochs", "2", "--seeds", "1"],
            ["quality", "--quick"],
            ["adapted_encoders", "--quick"],
            ["encoder_search", "--quick"],
            [
                *("env_throughput", "--surrogate", "--steps", "20000", "--repeats", "3"),
                *("--out", "benchmarks/results/env_throughput-surrogate-quick.json"),
            ],
            [
                *("surrogate_search", "--agents", "random", "--seeds", "1", "--budget", "50"),
                *("--name", "surrogate_search-quick"),
            ],
            ["cross_task", "--sample"],
            ["transfer", "--sample", "--seeds", "3", "--pretrain", "200", "--budget", "50"],
        ]
    missing = missing_tables()
    transfer = ["transfer", "--tune", "2.5", "1.5", "1.0", "0.5"]
    if missing:
        print(f"benchmarks.transfer is skipped: no table yet for the training tasks {missing}")
    return [
        ["env_throughput", "--live", "5"],
        ["cli_speed"],
        ["table_stats"],
        ["run_agents"],
        ["unmasked", "--runs", "20"],
        ["mo_agents"],  # its PPO rows (--ppo-seeds 5) need the mo extra
        ["mo_speed"],
        [
            "multifidelity",
            "--seeds",
            "20",
            "--agents",
            "random",
            "successive-halving",
            "hyperband",
            "asha",
        ],
        [
            *("multifidelity", "--seeds", "20", "--agents", "tpe", "optuna-hyperband"),
            *("--name", "multifidelity-optuna"),
        ],
        ["parallel_workers"],
        ["live_workers"],
        ["oneshot"],
        ["cost_definition"],
        ["memory_scale"],
        ["recommend_latency", "--threads", "1"],
        ["quality"],
        ["adapted_encoders"],
        ["encoder_search"],
        ["env_throughput", "--surrogate"],
        ["surrogate_search"],
        ["cross_task"],
        *([] if missing else [transfer, [*transfer, "--avoid-repeats"]]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run_all", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small runs of every benchmark")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args()
    try:  # the plots of table_stats, run_agents and cross_task; fail before hours of runs
        if not args.dry_run:  # which plots nothing
            import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit(
            "python -m benchmarks.run_all: error: the benchmarks' plots need matplotlib: "
            "pip install 'recnas-books[plots]'"
        ) from None
    timings = []
    for module, *options in steps(args.quick):
        print(f"\n$ python -m benchmarks.{module} {' '.join(options)}".rstrip(), flush=True)
        if args.dry_run:
            continue
        start = time.perf_counter()
        command = [sys.executable, "-m", f"benchmarks.{module}", *options]
        subprocess.run(command, cwd=ROOT, check=True)
        timings.append((module, time.perf_counter() - start))
    if timings:
        print("\n" + "\n".join(f"{module:20} {seconds:7.1f} s" for module, seconds in timings))


if __name__ == "__main__":
    main()
