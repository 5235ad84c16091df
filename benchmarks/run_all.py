"""Every benchmark of the package in one command: speed, the table, the agents, quality.

    python benchmarks/run_all.py --quick     # a few minutes on 2 cores: small runs of everything
    python benchmarks/run_all.py             # the numbers of benchmarks/RESULTS.md (hours)

Runs, in order, each as its own process (so each can also be run alone, with the same command):

1. ``env_throughput.py``: table-mode env steps/s against FrozenLake-v1, load time and memory,
   and live evaluations timed in the same run; ``cli_speed.py``: a table search's wall time from
   the command line;
2. ``table_stats.py``: what the shipped table holds (distribution, seed noise, fidelities);
3. ``run_agents.py``: every agent x seeds on the table env, regret curves and leaderboard;
   ``unmasked.py``: plain PPO and DQN without masks, with and without the env's help;
4. ``quality.py``: the architecture the searches found most often, retrained with fresh seeds,
   against popularity, MF-BPR, LightGCN and GCN-3;
5. ``env_throughput.py --surrogate`` and ``surrogate_search.py``: the full-space surrogate env's
   speed, and the architectures agents find on it, trained for real;
6. ``cross_task.py`` and ``transfer.py --tune ...`` (and ``--avoid-repeats``): how alike the book
   tasks rank architectures, and transfer from the training tasks to the held-out ones (skipped,
   saying why, while a training task has no table yet; ``--quick`` runs both on the tests'
   sample tables).

Outputs land in ``benchmarks/results/``. Every step resumes where a killed run stopped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nasenv.data import TRAINING_TASKS  # noqa: E402
from nasenv.table import shipped_tables  # noqa: E402


def missing_tables(tasks: tuple[str, ...] = TRAINING_TASKS) -> list[str]:
    """The tasks whose table is not shipped (yet)."""
    shipped = shipped_tables()
    return [task for task in tasks if task not in shipped]


def steps(quick: bool) -> list[list[str]]:
    if quick:
        return [
            [
                *("env_throughput.py", "--steps", "20000", "--repeats", "3", "--live", "1"),
                *("--out", "benchmarks/results/env_throughput-quick.json"),
            ],
            ["cli_speed.py", "--runs", "2", "--out", "benchmarks/results/cli_speed-quick.json"],
            ["table_stats.py"],
            ["run_agents.py", "--quick"],
            ["unmasked.py", "--runs", "2", "--budget", "50", "--max-steps", "5000"],
            ["quality.py", "--quick"],
            [
                *("env_throughput.py", "--surrogate", "--steps", "20000", "--repeats", "3"),
                *("--out", "benchmarks/results/env_throughput-surrogate-quick.json"),
            ],
            [
                *("surrogate_search.py", "--agents", "random", "--seeds", "1", "--budget", "50"),
                *("--name", "surrogate_search-quick"),
            ],
            ["cross_task.py", "--sample"],
            ["transfer.py", "--sample", "--seeds", "3", "--pretrain", "200", "--budget", "50"],
        ]
    missing = missing_tables()
    transfer = ["transfer.py", "--tune", "2.5", "1.5", "1.0", "0.5"]
    if missing:
        print(f"transfer.py is skipped: no table yet for the training tasks {missing}")
    return [
        ["env_throughput.py", "--live", "5"],
        ["cli_speed.py"],
        ["table_stats.py"],
        ["run_agents.py"],
        ["unmasked.py", "--runs", "20"],
        ["quality.py"],
        ["env_throughput.py", "--surrogate"],
        ["surrogate_search.py"],
        ["cross_task.py"],
        *([] if missing else [transfer, [*transfer, "--avoid-repeats"]]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small runs of every benchmark")
    args = parser.parse_args()
    try:  # the plots of table_stats.py, run_agents.py and cross_task.py; fail before hours of runs
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit(
            "benchmarks/run_all.py: error: the benchmarks' plots need matplotlib: "
            "pip install 'recnas-books[plots]'"
        ) from None
    timings = []
    for script, *options in steps(args.quick):
        command = [sys.executable, str(Path("benchmarks") / script), *options]
        print(f"\n$ python benchmarks/{script} {' '.join(options)}", flush=True)
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True)
        timings.append((script, time.perf_counter() - start))
    print("\n" + "\n".join(f"{script:20} {seconds:7.1f} s" for script, seconds in timings))


if __name__ == "__main__":
    main()
