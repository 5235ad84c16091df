"""Table-mode env speed against FrozenLake-v1, and the table's load time and memory.

    python -m benchmarks.env_throughput                 # the shipped Books-20core table
    python -m benchmarks.env_throughput --sample        # the sample table (before a build)
    python -m benchmarks.env_throughput --surrogate     # RecNAS-Books-Surrogate-v0 (full space)
    python -m benchmarks.env_throughput --surrogate --surrogate-version 1   # ... -Surrogate-v1

Both envs are made with ``gym.make`` (same wrappers) and stepped by the same loop replaying
pre-drawn actions, so that only the envs are timed: uniform random actions for FrozenLake, the
decisions of uniformly drawn architectures for ours (every 12th step is a table look-up).
Load time and memory are measured in a fresh interpreter:
the import of ``nasenv.table`` (numpy and gymnasium included), then the seconds from loading
the table (SHA-256 check included) to the answer of a first query, and the growth of resident
memory over that span. ``--live N`` also trains N uniformly drawn core architectures for real at
the tabulation budget (seed 0, all cores), to put a live evaluation's seconds next to a table
look-up's in the same run. ``--surrogate`` times the surrogate env instead (every 12th step is a
prediction), and loading the shipped surrogate plus a first prediction. Results:
``benchmarks/results/env_throughput[-surrogate[-v1]].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from benchmarks.common import RESULTS, ROOT, SAMPLE_DIR, sample_table

SAMPLE = SAMPLE_DIR / "tiny.npz"

PROBE = """
import json, sys, time
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
start = time.perf_counter()
IMPORTS
imported = time.perf_counter()
before = rss_mb()
LOAD
seconds = time.perf_counter() - imported
print(json.dumps({"import_s": imported - start, "load_and_first_query_s": seconds,
                  "rss_growth_mb": rss_mb() - before,
                  "torch_imported": "torch" in sys.modules, "architectures": n}))
"""
"""Times the imports and ``LOAD`` (which sets ``n``, the architectures loaded) in a fresh
interpreter."""

TABLE_LOAD = (
    "from nasenv.table import BenchmarkTable, load_table\nfrom nasenv.data import read_checksums",
    """path = sys.argv[1]
if path == "shipped":
    table = load_table()
else:
    from pathlib import Path
    table = BenchmarkTable.load(path, read_checksums(Path(path).parent)[Path(path).name])
table.query(0)
n = len(table)""",
)
SURROGATE_LOAD = (
    "from nasenv.space import FULL\nfrom nasenv.surrogate import load_surrogate",
    """surrogate = load_surrogate(version=VERSION)
surrogate.predict([FULL[0]])
n = len(surrogate.arrays["codes"])""",
)


def steps_per_second(env: gym.Env, actions: list[int]) -> float:
    """Steps per second of ``env`` replaying ``actions`` (resetting whenever an episode ends)."""
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.perf_counter() - start)


def random_architecture_actions(env: gym.Env, steps: int, seed: int) -> list[int]:
    """Action indices of uniformly drawn architectures of the env's space, ``steps`` in all."""
    from nasenv.space import SLOTS

    rng = np.random.default_rng(seed)
    actions: list[int] = []
    while len(actions) < steps:
        arch = env.get_wrapper_attr("space").sample(rng)
        actions += [slot.choices.index(v) for slot, v in zip(SLOTS, arch.decisions(), strict=True)]
    return actions[: steps - steps % len(SLOTS)]


def make_recnas(sample: bool, surrogate: bool = False, version: int = 0) -> gym.Env:
    import nasenv  # noqa: F401 - registers the ids

    if surrogate:
        return gym.make(f"RecNAS-Books-Surrogate-v{version}")
    if not sample:
        return gym.make("RecNAS-Books-v0", backend="table")
    from nasenv.evaluators import TableEvaluator
    from nasenv.testing import TINY_SPACE

    return gym.make("RecNAS-Books-v0", evaluator=TableEvaluator(sample_table()), space=TINY_SPACE)


def live_seconds(n: int, seed: int = 0) -> list[float]:
    """Wall seconds of ``n`` real trainings of uniformly drawn core architectures."""
    import torch

    from nasenv.data import load_dataset
    from nasenv.results import FIDELITIES
    from nasenv.space import CORE
    from nasenv.train import TrainingContext, train_architecture

    torch.set_num_threads(os.cpu_count() or 1)
    ctx = TrainingContext(load_dataset())
    rng = np.random.default_rng(seed)
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        train_architecture(CORE.sample(rng), ctx, 0, FIDELITIES["tabulation"])
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.env_throughput", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sample", action="store_true", help="use the sample table")
    parser.add_argument("--surrogate", action="store_true", help="time the surrogate env")
    parser.add_argument(
        "--surrogate-version", type=int, choices=(0, 1, 2), default=0, help="with --surrogate"
    )
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--live", type=int, default=0, help="also time N live evaluations")
    parser.add_argument(
        "--out",
        type=Path,
        help="the JSON result (default benchmarks/results/env_throughput[-surrogate].json)",
    )
    args = parser.parse_args()
    name = "env_throughput-surrogate" if args.surrogate else "env_throughput"
    if args.surrogate and args.surrogate_version:
        name += f"-v{args.surrogate_version}"
    args.out = args.out or RESULTS / f"{name}.json"

    frozen = gym.make("FrozenLake-v1")
    recnas = make_recnas(args.sample, args.surrogate, args.surrogate_version)
    ours, theirs = [], []
    for repeat in range(args.repeats):  # interleaved, so that machine load hits both alike
        rng = np.random.default_rng(repeat)
        theirs.append(steps_per_second(frozen, rng.integers(4, size=args.steps).tolist()))
        ours.append(
            steps_per_second(recnas, random_architecture_actions(recnas, args.steps, repeat))
        )
    imports, load_code = SURROGATE_LOAD if args.surrogate else TABLE_LOAD
    load_code = load_code.replace("VERSION", str(args.surrogate_version))
    probe_code = PROBE.replace("IMPORTS", imports).replace("LOAD", load_code)
    probe_arg = str(SAMPLE) if args.sample else "shipped"
    probe = subprocess.run(
        [sys.executable, "-c", probe_code, probe_arg],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result = {
        "table": (
            f"surrogate version {args.surrogate_version} of Books-20core (full space)"
            if args.surrogate
            else "tests/data/tiny.npz (sample)"
            if args.sample
            else "shipped Books-20core"
        ),
        "frozenlake_steps_per_s": statistics.median(theirs),
        f"recnas_{'surrogate' if args.surrogate else 'table'}_steps_per_s": statistics.median(ours),
        "ratio": statistics.median(ours) / statistics.median(theirs),
        "episodes_per_s": statistics.median(ours) / 12,
        **json.loads(probe.stdout),
    }
    if args.live:
        live = live_seconds(args.live)
        result["live_evaluations"] = len(live)
        result["live_median_s_per_evaluation"] = statistics.median(live)
        result["live_over_table_evaluation"] = statistics.median(live) * result["episodes_per_s"]
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for key, value in result.items():
        print(f"{key:28} {value:.4g}" if isinstance(value, float) else f"{key:28} {value}")


if __name__ == "__main__":
    main()
