"""``scripts/device_build.sh slim`` and ``restore``: the tree that travels to a device loan is
slimmed to the code and the GPU builds, and the index comes back exactly."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_build.sh"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    files = [
        "nasenv/code.py",
        "benchmarks/results/raw.csv",
        "benchmarks/table-build/Books-20core/shard-0000.jsonl",
        "benchmarks/table-build/Books-20core-core-v1-cuda/shard-0000.jsonl",
    ]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "device_build.sh")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    return tmp_path


def run(repo: Path, verb: str) -> str:
    return subprocess.run(
        ["bash", "scripts/device_build.sh", verb],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_slim_keeps_code_and_gpu_builds_and_restore_undoes_it(repo: Path) -> None:
    tracked = git(repo, "ls-files")
    exclude = (repo / ".git/info/exclude").read_text()
    out = run(repo, "slim")
    assert "do not commit before" in out
    assert git(repo, "ls-files").split() == [
        "benchmarks/table-build/Books-20core-core-v1-cuda/shard-0000.jsonl",
        "nasenv/code.py",
        "scripts/device_build.sh",
    ]
    # the untracked paths are ignored, so they do not travel as untracked files either
    assert git(repo, "status", "--short", "--untracked-files=all").split() == [
        "D",
        "benchmarks/results/raw.csv",
        "D",
        "benchmarks/table-build/Books-20core/shard-0000.jsonl",
    ]
    assert "index restored: 2 paths" in run(repo, "restore")
    assert git(repo, "ls-files") == tracked
    assert git(repo, "status", "--short") == ""
    assert (repo / ".git/info/exclude").read_text() == exclude


def test_slim_twice_restores_once_and_restore_without_slim_is_a_no_op(repo: Path) -> None:
    # a CPU build not committed yet is ignored for the call too, and stays untracked after
    (repo / "benchmarks/table-build/Books-10core").mkdir()
    (repo / "benchmarks/table-build/Books-10core/plan.json").write_text("{}")
    exclude = (repo / ".git/info/exclude").read_text()
    assert run(repo, "restore") == ""
    run(repo, "slim")
    run(repo, "slim")
    assert (repo / ".git/info/exclude").read_text().count("device_build.sh prepare") == 2
    assert "Books-10core" not in git(repo, "status", "--short", "--untracked-files=all")
    run(repo, "restore")
    assert git(repo, "status", "--short") == "?? benchmarks/table-build/Books-10core/\n"
    assert (repo / ".git/info/exclude").read_text() == exclude
