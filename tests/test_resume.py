"""A live search killed with SIGKILL loses no finished training: run again, it resumes.

The live back end's cache (:mod:`nasenv.cache`) is the search's journal: every finished
training is committed there before the agent hears of it, keyed by dataset checksum,
architecture, seed, budget and code version. A search started again with the same command
gets those trainings back instantly, charged their recorded seconds, so a seeded sequential
search replays exactly and goes on where it stopped; parallel workers get every finished
training back too (their proposals depend on finish order, as in any asynchronous search).
"""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nasenv.importer import import_interactions

BUDGET = 5


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A local task of 150 users in a fresh data home, and a fresh live cache."""
    rng = np.random.default_rng(0)
    path = tmp_path / "ratings.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item"])
        for user in range(150):
            for item in rng.choice(120, size=15, replace=False):
                writer.writerow([user, item])
    monkeypatch.setenv("RECNAS_DATA_DIR", str(tmp_path / "home"))
    monkeypatch.setenv("RECNAS_CACHE", str(tmp_path / "live.sqlite"))
    import_interactions(path, "resume-task", progress=False)
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def search_command(out: Path, workers: int = 1) -> list[str]:
    return [
        *(sys.executable, "-m", "agents.cli", "search", "--agent", "random"),
        *("--budget", str(BUDGET), "--seed", "3", "--workers", str(workers)),
        *("--env-id", "RecNAS-Books-Live-v0", "--dataset", "resume-task"),
        *("--fidelity", "tabulation", "--out", str(out)),
    ]


def finished_trainings(cache: Path) -> int:
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM results_v2").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def cached_archs(cache: Path) -> set[str]:
    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5) as db:
        return {row[0] for row in db.execute("SELECT arch FROM results_v2")}


def kill_after(command: list[str], env: dict[str, str], cache: Path, n: int) -> int:
    """Start ``command``, SIGKILL it once ``n`` trainings are in ``cache``; how many were."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while finished_trainings(cache) < n:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert time.monotonic() < deadline, "the search made no progress"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if process.stderr is not None:
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    return finished_trainings(cache)


def no_orphans(tmp_path: Path, wait: float = 10.0) -> bool:
    """Whether, within ``wait`` seconds, no process is left that works on this test's cache
    (the killed search's worker processes end with it)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        alive = subprocess.run(
            ["pgrep", "-f", "multiprocessing.spawn"], capture_output=True, text=True
        ).stdout.split()
        mine = [pid for pid in alive if _uses(pid, tmp_path)]
        if not mine:
            return True
        time.sleep(0.2)
    return False


def _uses(pid: str, tmp_path: Path) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return str(tmp_path).encode() in environ


@pytest.mark.parametrize(
    "workers",
    [pytest.param(1, marks=pytest.mark.slow), 2],  # the suite runs the parallel case
)
def test_a_killed_live_search_resumes_without_losing_a_training(environment, tmp_path, workers):
    """Killed with ``workers`` processes, resumed with one (the same random agent and seed
    propose the same architectures whatever the workers: the cache must answer the killed
    run's finished ones; in the suite this keeps to one spawn of worker processes)."""
    import gymnasium as gym

    from agents import make_agent
    from agents.runner import Budget, run_search

    cache = tmp_path / "live.sqlite"
    killed = kill_after(search_command(tmp_path / "killed.json", workers), environment, cache, 2)
    assert 2 <= killed < BUDGET
    before = cached_archs(cache)
    assert no_orphans(tmp_path)  # the killed search's worker processes ended with it
    env = gym.make("RecNAS-Books-Live-v0", dataset="resume-task", fidelity="tabulation")
    agent = make_agent("random", seed=3)  # the command's agent, seed and budget
    history = run_search(agent, env, Budget(evaluations=BUDGET), 3).history
    assert len(history) == BUDGET
    archs = {trial.arch for trial in history}
    assert before <= archs  # the killed run's trainings were asked for again...
    assert cached_archs(cache) == archs  # ...and answered by the cache: none trained twice
    if workers == 1:  # sequential: the replay asks for the killed run's trainings first
        assert {t.arch for t in history[: len(before)]} == before
