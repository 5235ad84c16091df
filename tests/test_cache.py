"""The live-training cache (nasenv.cache): keys, damaged files, locks and real concurrent processes.

Child processes use the "spawn" start method and a fake trainer (no torch), so that each test
stays within a few seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import nasenv
import nasenv.cache
from nasenv.cache import CacheError, CacheKey, CacheWarning, ResultCache
from nasenv.results import TrainConfig
from tests import fakes

CONFIG = TrainConfig(max_epochs=2, batch_size=64)
SPAWN = multiprocessing.get_context("spawn")
JOIN_SECONDS = 60  # generous: spawned children only import nasenv, but the machine may be busy


def fake_result(arch: str = "a", seed: int = 0, recall: float = 0.25, seconds: float = 1.0):
    return fakes.fake_result(arch, seed, recall, seconds, dataset="tiny", config=CONFIG)


def key(arch: str = "a", seed: int = 0) -> CacheKey:
    return CacheKey.current("0" * 64, arch, seed, CONFIG)


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "."))


def run_children(target, args_list: list[tuple]) -> None:
    processes = [SPAWN.Process(target=target, args=args) for args in args_list]
    for process in processes:
        process.start()
    for process in processes:
        process.join(JOIN_SECONDS)
        assert process.exitcode == 0, f"child exited with {process.exitcode}"


# -- child processes (module level: "spawn" imports them by name) ---------------------------


def _train_once(path, barrier, trainings, results, seconds) -> None:
    cache = ResultCache(path, poll=0.02)

    def compute(heartbeat):
        with trainings.get_lock():
            trainings.value += 1
        time.sleep(seconds)  # widen the window in which the other process asks
        heartbeat()
        return fake_result(recall=os.getpid() / 1e7)  # each process's own value

    barrier.wait()
    results.put(cache.get_or_compute(key(), compute).to_dict())


def _write_many(path, barrier, worker, n_keys) -> None:
    cache = ResultCache(path)
    barrier.wait()
    for i in range(n_keys):
        arch = f"w{worker}-{i}"
        if i % 2:
            cache.put(key(arch), fake_result(arch))
        else:
            cache.get_or_compute(key(arch), lambda heartbeat, arch=arch: fake_result(arch))


def _hold_lock(path, locked, release) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA locking_mode=EXCLUSIVE")  # blocks readers too, even in WAL mode
    db.execute("BEGIN EXCLUSIVE")
    db.execute("CREATE TABLE IF NOT EXISTS held (x)")
    locked.set()
    release.wait(JOIN_SECONDS)
    db.execute("COMMIT")
    db.close()


@contextlib.contextmanager
def locked_by_another_process(path):
    """``path`` held under an exclusive lock by a spawned process until the block ends."""
    locked, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=_hold_lock, args=(path, locked, release))
    holder.start()
    try:
        assert locked.wait(JOIN_SECONDS)
        yield
    finally:
        release.set()
        holder.join(JOIN_SECONDS)


def _open_damaged(path, barrier, worker) -> None:
    barrier.wait()
    cache = ResultCache(path)
    cache.put(key(f"r{worker}"), fake_result(f"r{worker}"))


# -- (a) one key asked for by two processes at once is trained once ------------------------


def test_two_processes_asking_for_one_key_train_it_once(tmp_path):
    path = tmp_path / "c.sqlite"
    ResultCache(path)  # the schema exists before the race
    barrier, trainings, results = SPAWN.Barrier(2), SPAWN.Value("i", 0), SPAWN.Queue()
    run_children(_train_once, [(path, barrier, trainings, results, 0.5)] * 2)
    first, second = results.get(timeout=5), results.get(timeout=5)
    assert trainings.value == 1
    assert first == second  # the waiter got the trainer's result, not its own
    assert count(path, "results_v2") == 1 and count(path, "claims_v2") == 0


# -- (b) concurrent writers of different keys lose nothing ---------------------------------


def test_many_processes_writing_different_keys_lose_none(tmp_path):
    path = tmp_path / "c.sqlite"
    n_workers, n_keys = 4, 8
    barrier = SPAWN.Barrier(n_workers)
    run_children(_write_many, [(path, barrier, w, n_keys) for w in range(n_workers)])
    assert count(path, "results_v2") == n_workers * n_keys
    assert count(path, "claims_v2") == 0
    cache = ResultCache(path)
    for w in range(n_workers):
        for i in range(n_keys):
            assert cache.get(key(f"w{w}-{i}")) == fake_result(f"w{w}-{i}")


# -- (c) a locked file is waited for, then skipped, never renamed --------------------------


def test_a_locked_cache_is_not_renamed_and_the_call_runs_uncached(tmp_path):
    path = tmp_path / "c.sqlite"
    ResultCache(path).put(key("kept"), fake_result("kept"))
    with locked_by_another_process(path):
        with pytest.warns(CacheWarning, match="locked"):
            cache = ResultCache(path, timeout=0.2)  # opening waits, warns, goes on
        with pytest.warns(CacheWarning, match="locked"):
            assert cache.get(key("kept")) is None
        with pytest.warns(CacheWarning, match="locked.*result not cached"):
            cache.put(key("new"), fake_result("new"))
        calls = []
        with pytest.warns(CacheWarning, match="locked"):
            result = cache.get_or_compute(
                key("b"), lambda beat: calls.append(1) or fake_result("b")
            )
        assert result == fake_result("b") and calls == [1]
        assert path.is_file() and not [name for name in siblings(path) if "corrupt" in name]
    assert not [name for name in siblings(path) if "corrupt" in name]
    assert cache.get(key("kept")) == fake_result("kept")  # the same file, intact
    assert cache.put(key("new"), fake_result("new")) == fake_result("new")
    assert cache.get(key("new")) == fake_result("new")


def test_a_cache_first_opened_while_locked_works_once_released(tmp_path):
    path = tmp_path / "c.sqlite"
    sqlite3.connect(path).close()  # an empty file: the schema does not exist yet
    with locked_by_another_process(path), pytest.warns(CacheWarning, match="locked"):
        cache = ResultCache(path, timeout=0.2)
    cache.put(key(), fake_result())
    assert cache.get(key()) == fake_result()
    assert not [name for name in siblings(path) if "corrupt" in name]


# -- (d) a directory or an unusable path is a clear error, nothing renamed -----------------


def test_a_directory_at_the_cache_path_is_a_clear_error(tmp_path):
    path = tmp_path / "c.sqlite"
    path.mkdir()
    (path / "inside").write_text("keep me")
    with pytest.raises(CacheError, match=re.escape(str(path)) + ".*directory"):
        ResultCache(path)
    assert path.is_dir() and (path / "inside").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.sqlite"]


def test_a_path_below_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "c.sqlite"
    with pytest.raises(CacheError, match=re.escape(str(path))):
        ResultCache(path)
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores modes")
def test_a_read_only_cache_is_a_clear_error_and_is_not_renamed(tmp_path):
    path = tmp_path / "c.sqlite"
    sqlite3.connect(path).close()
    path.chmod(0o444)
    try:
        with pytest.raises(CacheError, match=re.escape(str(path))):
            ResultCache(path)
        assert path.is_file() and not [n for n in siblings(path) if "corrupt" in n]
    finally:
        path.chmod(0o644)


# -- (e) a file that is not a database is moved aside --------------------------------------


def test_a_corrupt_file_is_moved_aside_with_a_warning_naming_both_paths(tmp_path):
    path = tmp_path / "c.sqlite"
    garbage = b"not a database " * 100
    path.write_bytes(garbage)
    with pytest.warns(CacheWarning, match="not a readable cache") as caught:
        cache = ResultCache(path)
    (aside,) = tmp_path.glob("c.sqlite.corrupt-*")
    message = str(caught[0].message)
    assert str(path) in message and str(aside) in message
    assert aside.read_bytes() == garbage
    cache.put(key(), fake_result())
    assert cache.get(key()) == fake_result()


def test_a_file_damaged_while_in_use_is_recovered_at_the_next_call(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResultCache(path)
    cache.put(key(), fake_result())
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"\0garbage" * 500)
    with pytest.warns(CacheWarning, match="not a readable cache"):
        assert cache.get(key()) is None
    assert len(list(tmp_path.glob("c.sqlite.corrupt-*"))) == 1
    cache.put(key(), fake_result())
    assert cache.get(key()) == fake_result()


def test_processes_finding_one_damaged_file_move_it_aside_once(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"not a database " * 100)
    n = 3
    barrier = SPAWN.Barrier(n)
    run_children(_open_damaged, [(path, barrier, w) for w in range(n)])
    moved = [
        p for p in tmp_path.glob("c.sqlite.corrupt-*") if not p.name.endswith(("-wal", "-shm"))
    ]
    assert len(moved) == 1
    cache = ResultCache(path)
    assert all(cache.get(key(f"r{w}")) == fake_result(f"r{w}") for w in range(n))


def test_a_corrupt_entry_is_recomputed_and_replaced(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResultCache(path)
    cache.put(key(), fake_result())
    with sqlite3.connect(path) as db:
        db.execute("UPDATE results_v2 SET result = ?", ('{"arch": "trunc',))
    with pytest.warns(CacheWarning, match="corrupt cache entry"):
        assert (
            cache.get_or_compute(key(), lambda beat: fake_result(recall=0.5)).val_recall[1] == 0.5
        )
    assert cache.get(key()) == fake_result(recall=0.5)  # replaced, no warning now
    assert not list(tmp_path.glob("c.sqlite.corrupt-*"))


# -- (f) the key carries versions and device -----------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"package": "99.0"},
        {"protocol": 99},
        {"torch": "0.1"},
        {"device": "cuda"},
        {"dataset": "other"},
        {"seed": 1},
        {"config": TrainConfig(max_epochs=3, batch_size=64)},
    ],
)
def test_a_changed_version_device_or_run_misses(tmp_path, change):
    cache = ResultCache(tmp_path / "c.sqlite")
    cache.put(key(), fake_result())
    assert cache.get(key()) == fake_result()
    assert cache.get(dataclasses.replace(key(), **change)) is None


def test_the_current_key_follows_the_running_code(monkeypatch):
    before = key()
    monkeypatch.setattr(nasenv, "__version__", "99.0")
    assert key().package == "99.0" and key() != before
    monkeypatch.undo()
    monkeypatch.setattr(nasenv.cache, "PROTOCOL_VERSION", nasenv.cache.PROTOCOL_VERSION + 1)
    assert key().protocol == before.protocol + 1
    monkeypatch.undo()
    monkeypatch.setattr(nasenv.cache, "torch_version", lambda: "0.0.1")
    assert key().torch == "0.0.1"
    monkeypatch.undo()
    assert CacheKey.current("d", "a", 0, CONFIG, "cuda:1").device == "cuda"
    assert key().encode() == before.encode()  # threads are not part of the key
    threaded = dataclasses.replace(before, config=dataclasses.replace(CONFIG, threads=4))
    assert threaded.encode() == before.encode()


def test_an_old_schema_file_is_kept_and_its_rows_ignored(tmp_path):
    path = tmp_path / "c.sqlite"
    with sqlite3.connect(path) as db:  # nasenv 0.1's layout
        db.execute(
            "CREATE TABLE results (dataset TEXT, arch TEXT, seed INTEGER, fidelity TEXT, "
            "result TEXT NOT NULL, PRIMARY KEY (dataset, arch, seed, fidelity))"
        )
        db.execute("INSERT INTO results VALUES ('0', 'a', 0, '{}', '{}')")
    cache = ResultCache(path)
    assert cache.get(key()) is None
    cache.put(key(), fake_result())
    assert cache.get(key()) == fake_result()
    assert count(path, "results") == 1 and not list(tmp_path.glob("*.corrupt-*"))


# -- put never overwrites; claims --------------------------------------------------------------


def test_put_keeps_a_finished_entry(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite")
    assert cache.put(key(), fake_result(recall=0.25)) == fake_result(recall=0.25)
    retrained = fake_result(recall=0.25, seconds=9.0)  # same outcome, other timings: quiet
    assert cache.put(key(), retrained) == fake_result(recall=0.25)
    with pytest.warns(CacheWarning, match="different result"):
        assert cache.put(key(), fake_result(recall=0.5)) == fake_result(recall=0.25)
    assert cache.get(key()) == fake_result(recall=0.25)
    with pytest.raises(ValueError, match="does not belong"):
        cache.put(key("b"), fake_result("a"))


def _claim_row(path: Path, host: str, pid: int, heartbeat: float) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO claims_v2 VALUES (?, ?, ?, 'tok', ?, ?)",
            (key().encode(), host, pid, heartbeat, heartbeat),
        )


def _exit() -> None:
    pass


def test_a_claim_of_a_dead_process_is_taken_over(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResultCache(path, wait_timeout=5)
    dead = SPAWN.Process(target=_exit)
    dead.start()
    dead.join(JOIN_SECONDS)
    _claim_row(path, nasenv.cache._HOST, dead.pid, time.time())
    assert cache.get_or_compute(key(), lambda beat: fake_result()) == fake_result()
    assert count(path, "claims_v2") == 0


def test_a_claim_without_heartbeat_is_taken_over(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResultCache(path, stale_after=60, wait_timeout=5)
    _claim_row(path, "another-host", 1, time.time() - 61)  # alive, maybe, but silent
    assert cache.get_or_compute(key(), lambda beat: fake_result()) == fake_result()


def test_a_live_claim_is_waited_for_until_the_wait_timeout(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResultCache(path, poll=0.02, wait_timeout=0.2)
    _claim_row(path, "another-host", 1, time.time())
    started = time.monotonic()
    with pytest.warns(CacheWarning, match="another-host:1.*training it here as well"):
        assert cache.get_or_compute(key(), lambda beat: fake_result()) == fake_result()
    assert time.monotonic() - started >= 0.2
    assert cache.get(key()) == fake_result()


def test_a_failed_computation_releases_its_claim(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResultCache(path, wait_timeout=1)

    def fail(beat):
        raise RuntimeError("diverged badly")

    with pytest.raises(RuntimeError, match="diverged badly"):
        cache.get_or_compute(key(), fail)
    assert count(path, "claims_v2") == 0
    assert cache.get_or_compute(key(), lambda beat: fake_result()) == fake_result()


def test_the_heartbeat_refreshes_the_claim(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResultCache(path, stale_after=0.5)
    beats = []

    def compute(beat):
        with sqlite3.connect(path) as db:
            beats.append(db.execute("SELECT heartbeat FROM claims_v2").fetchone()[0])
        time.sleep(0.1)
        beat()
        with sqlite3.connect(path) as db:
            beats.append(db.execute("SELECT heartbeat FROM claims_v2").fetchone()[0])
        return fake_result()

    cache.get_or_compute(key(), compute)
    assert beats[1] > beats[0]


def test_a_leftover_claim_of_this_process_is_taken_over(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResultCache(path, wait_timeout=5)
    _claim_row(path, nasenv.cache._HOST, os.getpid(), time.time())  # not one of its live claims
    assert cache.get_or_compute(key(), lambda beat: fake_result()) == fake_result()


def test_two_threads_asking_for_one_key_train_it_once(tmp_path):
    path = tmp_path / "c.sqlite"
    trainings = []

    def compute(beat):
        trainings.append(threading.get_ident())
        time.sleep(0.3)
        return fake_result(recall=len(trainings) / 10)

    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(lambda _: ResultCache(path, poll=0.02).get_or_compute(key(), compute), [0, 1])
        )
    assert len(trainings) == 1 and results[0] == results[1]
