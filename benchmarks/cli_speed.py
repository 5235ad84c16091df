"""Wall time of a table search from the command line, and whether it imports torch.

    python -m benchmarks.cli_speed              # 7 runs of each command
    python -m benchmarks.cli_speed --runs 3

Each command runs in a fresh interpreter, as a user types it; the median over runs is reported
with the load average at the start, because the machine's other work moves these numbers. A
separate interpreter per agent checks that a table search never imports torch or
torch_geometric (the neural agents, REINFORCE and PPO, need torch and are not timed here).
Target: ``recnas search`` on the table under 1.5 s wall on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS

COMMANDS = {
    "recnas search --agent random --budget 300 --seed 0": ["search", "--agent", "random"],
    "recnas search --agent qlearning --budget 300 --seed 0": ["search", "--agent", "qlearning"],
    "recnas agents": ["agents"],
}
PROBE = (
    "import sys, agents.cli as c\n"
    "c.main(['search', '--agent', {agent!r}, '--budget', '300', '--seed', '0'])\n"
    "print('torch' in sys.modules, 'torch_geometric' in sys.modules, file=sys.stderr)\n"
)


def recnas() -> list[str]:
    """The installed ``recnas`` script, or the module with this interpreter."""
    found = shutil.which("recnas")
    return [found] if found else [sys.executable, "-m", "agents.cli"]


def time_command(argv: list[str], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return seconds


def imports_torch(agent: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(agent=agent)],
        check=True,
        capture_output=True,
        text=True,
    )
    return "True" in done.stderr.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cli_speed", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "cli_speed.json")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    result: dict[str, object] = {"runs": args.runs, "load_average_at_start": load}
    for name, words in COMMANDS.items():
        extra = ["--budget", "300", "--seed", "0"] if words[0] == "search" else []
        seconds = time_command([*recnas(), *words, *extra], args.runs)
        result[name] = {"median_s": statistics.median(seconds), "min_s": min(seconds)}
        print(f"{name:55} median {statistics.median(seconds):.2f} s (min {min(seconds):.2f})")
    for agent in ("random", "evolution", "qlearning", "tpe"):
        result[f"imports torch ({agent})"] = imports_torch(agent)
        print(f"a table search with {agent} imports torch: {result[f'imports torch ({agent})']}")
    print(f"load average at the start: {load:.2f}")
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
