"""Reliability: fuzzed agents, determinism across processes, crash-safe journals, failed
trainings inside the env, and no unsafe loading anywhere in the package."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasenv.env import N_ACTIONS, RecNASEnv
from nasenv.evaluators import FAILED_SCORE, LiveEvaluator, TableEvaluator
from nasenv.results import TrainConfig
from nasenv.table import BenchmarkTable
from nasenv.tablebuild import BuildPlan, ShardStore
from nasenv.testing import TINY_SPACE

ROOT = Path(__file__).resolve().parent.parent
TABLE = BenchmarkTable.load(ROOT / "tests" / "data" / "tiny.npz")

actions = st.one_of(
    st.integers(-3, N_ACTIONS + 3),
    st.sampled_from([np.int64(1), np.int8(0), 1.0, 2.5, None, "1", True]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(actions, max_size=40), st.integers(0, 2**31 - 1))
def test_any_action_sequence_keeps_the_env_consistent(sequence, seed):
    env = RecNASEnv(evaluator=TableEvaluator(TABLE), space=TINY_SPACE, seed_policy="random")
    obs, info = env.reset(seed=seed)
    for action in sequence:
        if not isinstance(action, (int, np.integer)):  # not an action at all: refused, no change
            before = list(env.decisions)
            with pytest.raises(TypeError, match="not an integer action"):
                env.step(action)
            assert env.decisions == before
            continue
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs)
        assert info["action_mask"].dtype == np.int8 and info["action_mask"].shape == (N_ACTIONS,)
        assert -1.0 <= float(reward) <= 1.0 and not truncated
        if terminated:
            assert info.get("invalid_action") or "arch" in info
            with pytest.raises(RuntimeError, match="after the episode ended"):
                env.step(0)
            obs, info = env.reset()


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["dataset", "backend", "metric", "fidelity", "seed_policy", "invalid_action"]),
    st.text(min_size=1, max_size=12),
)
def test_any_unknown_argument_value_names_the_allowed_ones(name, value):
    allowed = {
        "dataset": "Books-20core",
        "backend": "table",
        "metric": "recall",
        "fidelity": "tabulation",
        "seed_policy": "fixed",
        "invalid_action": "penalize",
    }
    if value == allowed[name] or value in {
        "live",
        "ndcg",
        "low",
        "converged",
        "random",
        "mean",
        "raise",
        "Books-10core",
    }:
        return
    with pytest.raises(ValueError, match=r"allowed|known"):
        RecNASEnv(**{name: value}, backend="live", cache=None) if name != "backend" else RecNASEnv(
            backend=value
        )


REWARDS_SCRIPT = """
import hashlib
from nasenv.env import RecNASEnv
from nasenv.evaluators import TableEvaluator
from nasenv.table import BenchmarkTable
from nasenv.testing import TINY_SPACE
env = RecNASEnv(evaluator=TableEvaluator(BenchmarkTable.load({table!r})), space=TINY_SPACE,
                seed_policy="random")
_, info = env.reset(seed=11)
env.action_space.seed(11)
rewards = []
while len(rewards) < 300:
    _, reward, terminated, _, info = env.step(env.action_space.sample(mask=info["action_mask"]))
    if terminated:
        rewards.append(reward)
        _, info = env.reset()
print(hashlib.sha256(repr(rewards).encode()).hexdigest())
"""


def in_repository() -> dict:
    """``subprocess`` options that make the repository's packages (``tests`` among them)
    importable in a child interpreter: started in the root, with the root on ``PYTHONPATH``."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {"cwd": str(ROOT), "env": {**os.environ, "PYTHONPATH": path}}


def test_table_episodes_are_identical_across_processes():
    script = REWARDS_SCRIPT.format(table=str(ROOT / "tests/data/tiny.npz"))
    digests = {
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(digests) == 1 and len(next(iter(digests))) == 64


WRITER_SCRIPT = """
from nasenv.tablebuild import BuildPlan, ShardStore
from tests.test_tablebuild import fake_result
plan = BuildPlan(seeds=(0,), shard_size=7)
store = ShardStore({directory!r}, plan)
pending = store.pending()
print("ready", flush=True)
for arch, seed in pending:
    store.record(fake_result(arch, seed))
    print(arch, flush=True)  # only after record() returned: this training is durable
"""


def test_a_killed_build_loses_no_recorded_training_and_leaves_no_corrupt_shard(tmp_path):
    plan = BuildPlan(seeds=(0,), shard_size=7)
    confirmed: set[str] = set()
    rng = np.random.default_rng(0)
    for _ in range(5):
        script = WRITER_SCRIPT.format(directory=str(tmp_path))
        child = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, **in_repository()
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        # Kill after a random number of confirmed records, so that the kill lands while the
        # writer is busy with the next one, on a fast machine or a slow one alike.
        for _ in range(int(rng.integers(3, 40))):
            confirmed.add(child.stdout.readline().strip())
        time.sleep(0.002 * rng.random())
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        confirmed |= {line.strip() for line in out.splitlines() if line.strip()}
        store = ShardStore(tmp_path, plan)
        done = {arch for arch, _ in store.done()}
        assert confirmed <= done
        for shard, tasks in enumerate(plan.shards()):
            if store.is_sealed(shard):
                lines = store.sealed_path(shard).read_text().splitlines()
                assert len(lines) == len(tasks) and all(json.loads(line) for line in lines)
    assert 7 < len(confirmed) < 708  # the kills landed while records were being written


def test_a_failed_training_in_the_table_is_the_documented_reward_and_the_env_goes_on():
    arrays = dict(TABLE.arrays)
    arrays["ok"] = arrays["ok"].copy()
    arrays["ok"][4, :] = False
    env = RecNASEnv(evaluator=TableEvaluator(BenchmarkTable(arrays)), space=TINY_SPACE)
    for index, expected_status in ((4, "failed"), (5, "ok")):
        env.reset()
        for slot_choices, value in zip(
            [s.choices for s in __import__("nasenv.space").space.SLOTS],
            TINY_SPACE[index].decisions(),
            strict=True,
        ):
            _, reward, terminated, _, info = env.step(slot_choices.index(value))
        assert terminated and info["status"] == expected_status
        if expected_status == "failed":
            assert reward == FAILED_SCORE


def test_a_diverging_live_training_is_a_failed_evaluation(tiny_dataset, exploding_adam):
    evaluator = LiveEvaluator(tiny_dataset, TrainConfig(max_epochs=3, batch_size=32), cache=None)
    exploding = dataclasses.replace(TINY_SPACE[10], loss="bce")
    evaluation = evaluator.evaluate(exploding, 0)
    assert evaluation.status == "failed" and evaluation.score("recall") == FAILED_SCORE
    assert "non-finite" in evaluation.reason


def test_no_unsafe_loading_in_the_package():
    sources = {
        path: path.read_text()
        for folder in ("nasenv", "agents", "scripts", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
    }
    assert sources
    for path, text in sources.items():
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib)\b", text, re.M), path
        assert "allow_pickle=True" not in text, path
        for call in re.findall(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in call, path
        for sql in re.findall(r"\.execute\(\s*(f[\"']|[\"'][^\"']*[\"']\s*%)", text):
            pytest.fail(f"{path}: SQL built by string formatting: {sql}")


def test_the_sample_table_hash_is_its_content():
    digest = hashlib.sha256((ROOT / "tests/data/tiny.npz").read_bytes()).hexdigest()
    sums = (ROOT / "tests/data/SHA256SUMS").read_text()
    assert f"{digest}  tiny.npz" in sums
