"""Speed of a multi-objective episode against a single-objective one, on the shipped table.

    python -m benchmarks.mo_speed                # 20,000 episodes of each, 5 repeats

``gym.make("RecNAS-Books-v0")`` and ``gym.make("RecNAS-Books-MO-v0")`` replay the decisions of the
same uniformly drawn core architectures (seed 0), in alternating repeats so that both see the same
machine load; the median of the repeats is reported. The target (issue 18): a multi-objective
episode at least half as fast as a single-objective one. Result:
``benchmarks/results/mo_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import nasenv  # noqa: F401 - registers the ids
from benchmarks.common import RESULTS
from nasenv.space import CORE, SLOTS


def actions(episodes: int) -> list[list[int]]:
    """The action sequences of ``episodes`` uniformly drawn core architectures."""
    rng = np.random.default_rng(0)
    archs = [CORE[int(i)] for i in rng.integers(len(CORE), size=episodes)]
    return [
        [slot.choices.index(v) for slot, v in zip(SLOTS, a.decisions(), strict=True)] for a in archs
    ]


def episodes_per_second(env_id: str, plays: list[list[int]]) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    start = time.perf_counter()
    for play in plays:
        for action in play:
            env.step(action)
        env.reset()
    return len(plays) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mo_speed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "mo_speed.json"), help="result file")
    args = parser.parse_args(argv)
    plays = actions(args.episodes)
    rates: dict[str, list[float]] = {"RecNAS-Books-v0": [], "RecNAS-Books-MO-v0": []}
    for _ in range(args.repeats):
        for env_id, values in rates.items():
            values.append(episodes_per_second(env_id, plays))
    medians = {env_id: statistics.median(values) for env_id, values in rates.items()}
    result = {
        "episodes": args.episodes,
        "repeats": args.repeats,
        "episodes_per_second": medians,
        "ratio": medians["RecNAS-Books-MO-v0"] / medians["RecNAS-Books-v0"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
