"""Long reliability runs (the fast versions are in tests/test_reliability.py).

    python -m benchmarks.reliability                    # all checks, on the sample table
    python -m benchmarks.reliability --table shipped    # env checks on the shipped table
    python -m benchmarks.reliability --checks crash_safe_build   # one check, merged into the JSON

1. fuzzing: 10,000 episodes of random actions (mostly valid; 3% any integer, 2% a wrong type);
2. determinism: 1,000 episodes with the random seed policy, in two separate processes;
3. memory: resident-memory growth over 100,000 table episodes;
4. crash-safe builds: ``scripts/build_table.py`` killed with SIGKILL at random moments (5 times)
   while training real architectures, then resumed; no recorded training may be lost and every
   sealed shard must parse.

Results: ``benchmarks/results/reliability.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import RESULTS, ROOT, sample_table
from nasenv.env import N_ACTIONS, RecNASEnv
from nasenv.evaluators import TableEvaluator
from nasenv.tablebuild import BuildPlan, ShardStore
from nasenv.testing import TINY_SPACE


def make_env(table: str, **kwargs) -> RecNASEnv:
    """A table env over the shipped table (``shipped``) or the sample table (``sample``)."""
    if table == "shipped":
        return RecNASEnv(backend="table", **kwargs)
    return RecNASEnv(evaluator=TableEvaluator(sample_table()), space=TINY_SPACE, **kwargs)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def fuzz(table: str, episodes: int) -> dict:
    env = make_env(table, seed_policy="random")
    rng = np.random.default_rng(0)
    odd = [None, 1.5, "2", -1, N_ACTIONS, np.int64(2), True]
    errors, invalid, evaluated, steps, refused = 0, 0, 0, 0, 0
    env.reset(seed=0)
    for _ in range(episodes):
        terminated = False
        while not terminated:
            r = rng.random()  # mostly valid, sometimes any integer, rarely a wrong type
            if r < 0.02:
                action = odd[rng.integers(len(odd))]
            elif r < 0.05:
                action = int(rng.integers(N_ACTIONS))
            else:
                action = int(rng.choice(np.flatnonzero(env.action_masks())))
            try:
                obs, _, terminated, _, info = env.step(action)
                steps += 1
                assert env.observation_space.contains(obs)
                invalid += bool(info.get("invalid_action"))
                evaluated += "arch" in info
            except TypeError:
                if env.action_space.contains(action):  # an action the space accepts must work
                    errors += 1
                    terminated = True
                else:  # refused as documented (nasenv.env.as_action); the episode goes on
                    refused += 1
            except Exception:  # any other exception is a crash of the env
                errors += 1
                terminated = True
        env.reset()
    return {
        "episodes": episodes,
        "steps": steps,
        "evaluated_episodes": evaluated,
        "invalid_episodes": invalid,
        "refused_types": refused,
        "crashes": errors,
    }


DETERMINISM = """
import hashlib
from benchmarks.reliability import make_env
env = make_env({table!r}, seed_policy="random")
_, info = env.reset(seed=123)
env.action_space.seed(123)
rewards = []
while len(rewards) < {episodes}:
    _, reward, done, _, info = env.step(env.action_space.sample(mask=info["action_mask"]))
    if done:
        rewards.append(reward)
        _, info = env.reset()
print(hashlib.sha256(repr(rewards).encode()).hexdigest())
"""
"""Run by ``python -c`` in the repository root (its first ``sys.path`` entry), where
``benchmarks`` is importable as it is for ``python -m benchmarks.reliability``."""


def determinism(table: str, episodes: int) -> dict:
    script = DETERMINISM.format(table=table, episodes=episodes)
    digests = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout.strip()
        for _ in range(2)
    ]
    return {"episodes": episodes, "processes": 2, "identical": digests[0] == digests[1]}


def memory(table: str, episodes: int) -> dict:
    env = make_env(table, seed_policy="random")
    _, info = env.reset(seed=0)
    env.action_space.seed(0)
    samples, done_episodes = [], 0
    start = time.perf_counter()
    while done_episodes < episodes:
        _, _, done, _, info = env.step(env.action_space.sample(mask=info["action_mask"]))
        if done:
            done_episodes += 1
            _, info = env.reset()
            if done_episodes % (episodes // 10) == 0:
                samples.append(rss_mb())
    return {
        "episodes": episodes,
        "rss_mb_at_10pct": samples[0],
        "rss_mb_at_end": samples[-1],
        "growth_mb": samples[-1] - samples[0],
        "seconds": time.perf_counter() - start,
    }


def crash_safe_build(kills: int, seed: int = 0) -> dict:
    """Kill a real build (first architectures of the core plan, 2 per shard) and resume it."""
    rng = np.random.default_rng(seed)
    plan = BuildPlan(seeds=(0,), shard_size=2)
    limit = 10
    with tempfile.TemporaryDirectory() as directory:
        command = [
            sys.executable, str(ROOT / "scripts/build_table.py"), "--out", directory,
            "--seeds", "0", "--shard-size", "2", "--workers", "1", "--limit", str(limit),
        ]  # fmt: skip
        seen: set[tuple[str, int]] = set()
        lost, corrupt = 0, 0
        for _ in range(kills):
            child = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            time.sleep(float(rng.uniform(20, 60)))  # start-up, then inside some training
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            store = ShardStore(directory, plan)
            done = set(store.done())
            lost += len(seen - done)
            seen |= done
            for shard in range(store.n_shards):
                if store.is_sealed(shard):
                    try:
                        store.records(shard)
                    except ValueError:
                        corrupt += 1
        subprocess.run(command, check=True, capture_output=True)  # resume once, uninterrupted
        final = set(ShardStore(directory, plan).done())
    return {
        "kills": kills,
        "trainings_recorded_across_the_kills": len(seen),
        "lost_during_kills": lost,
        "corrupt_shards": corrupt,
        "lost_after_resume": len(seen - final),
        "new_trainings_of_the_resumed_run": len(final - seen),
        "expected_new": limit,  # --limit: pending trainings one invocation runs
    }


CHECKS = {
    "fuzz": lambda table: fuzz(table, 10_000),
    "determinism": lambda table: determinism(table, 1_000),
    "memory": lambda table: memory(table, 100_000),
    "crash_safe_build": lambda table: crash_safe_build(kills=5),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.reliability", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--table", default="sample", choices=["sample", "shipped"])
    parser.add_argument(
        "--checks", nargs="+", default=list(CHECKS), choices=list(CHECKS), help="default: all"
    )
    args = parser.parse_args()
    out = RESULTS / "reliability.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    if results.get("table") != args.table:
        results = {"table": args.table}
    for name in args.checks:
        results[name] = CHECKS[name](args.table)
        out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
