"""Table releases: more seeds of a task ship as a new release's file; release 0, what the
version 0 ids answer from, stays as it was, and a release's seeds of release 0 are the same
trainings bit for bit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import nasenv  # noqa: F401  (registers the ids)
from nasenv.table import RELEASES, load_table, table_filename

ROOT = Path(__file__).resolve().parent.parent


def test_a_release_names_the_files_it_ships_anew_and_keeps_the_others():
    assert table_filename("Books-20core", release=1) == "books-20core-r1.npz"
    assert table_filename("Books-20core") == "books-20core.npz"
    assert table_filename("Books-Canada-5core", release=1) == "books-canada-5core.npz"
    assert (
        table_filename("Books-Europe-5core", "core-v1", release=1)
        == "books-europe-5core-core-v1.npz"
    )
    assert set(RELEASES[0]) == set()
    with pytest.raises(ValueError, match=r"unknown table release 2; allowed: \[0, 1\]"):
        table_filename("Books-20core", release=2)


@pytest.mark.parametrize(("task", "seeds"), [("Books-20core", 5), ("Books-USA-20core", 3)])
def test_release_1_holds_every_seed_and_release_0s_trainings_unchanged(task, seeds):
    old, new = load_table(task), load_table(task, release=1)
    assert list(new.seeds) == list(range(seeds))
    n = len(old.seeds)
    assert list(new.arch_strings) == list(old.arch_strings)
    for name, array in old.arrays.items():
        if name in ("meta", "seed"):
            continue
        mine = new.arrays[name]
        mine = mine[:, :n] if array.ndim >= 2 else mine
        assert np.array_equal(array, mine, equal_nan=array.dtype.kind == "f"), name


def test_the_env_answers_from_a_release_only_when_asked():
    default = gym.make("RecNAS-Books-v0").unwrapped
    assert default.seeds == (0, 1, 2)
    env = gym.make("RecNAS-Books-v0", table_release=1).unwrapped
    assert env.seeds == (0, 1, 2, 3, 4)
    drawn = set()
    for episode in range(40):
        env.reset(seed=episode)
        done, info = False, {}
        while not done:
            action = int(np.flatnonzero(env.action_masks())[0])
            _, _, done, _, info = env.step(action)
        drawn.add(info["seed"])
    assert drawn == {0, 1, 2, 3, 4}
    with pytest.raises(ValueError, match="table_release=1 needs backend='table'"):
        gym.make("RecNAS-Books-v0", backend="surrogate", space="full", table_release=1)
    with pytest.raises(FileNotFoundError, match=r"books-10core-r1\.npz"):
        gym.make("RecNAS-Books-v0", dataset="Books-10core", table_release=1)


def script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_the_scripts_refuse_a_file_the_release_keeps_and_seeds_it_lacks(tmp_path):
    build = "benchmarks/table-build/Books-Canada-5core"
    done = script(
        "scripts/assemble_table.py", "--release", "1", "--build", build, "--out", str(tmp_path)
    )
    assert done.returncode == 2 and not list(tmp_path.iterdir())
    assert "release 1 ships no new 'core' table of Books-Canada-5core" in done.stderr
    done = script("scripts/validate_table.py", "--release", "1", "--table-seeds", "7")
    assert done.returncode == 2
    assert "--table-seeds [7] are not in the table's seeds [0, 1, 2, 3, 4]" in done.stderr
