"""The live-training cache: finished :class:`~nasenv.results.TrainResult` values in one SQLite
file, shared by every thread and process of one machine that trains architectures.

Keys
----
A :class:`CacheKey` names everything that makes a stored result valid: the dataset (its SHA-256),
the canonical architecture, the seed, the training budget (:class:`~nasenv.results.TrainConfig`
without ``threads``), the device type (``"cpu"``, ``"cuda"``, ...; ``"cuda:1"`` counts as
``"cuda"``), the package version (``nasenv.__version__``), the training-protocol version
:data:`PROTOCOL_VERSION` and the installed torch version. A change of any of them misses the
cache and trains again. :data:`PROTOCOL_VERSION` **must be bumped whenever the numbers a training
produces change** (models, training loop, sampling, metrics) without a package version bump.

Schema
------
Schema 2 (this module) keeps two tables, ``results_v2`` (``key`` = the canonical JSON of the
:class:`CacheKey`, the result as JSON, who wrote it and when) and ``claims_v2`` (``key``, the
owner's host, pid and random token, when it started, its last heartbeat). Schema-1 files (one
``results`` table keyed by dataset, architecture, seed and fidelity, written by nasenv 0.1) carry
no versions or device, so their rows are **ignored**: the old table is left as it is (old
processes sharing the file keep working) and the new tables are created next to it.

Concurrency protocol
--------------------
* The file is in WAL mode (readers never block the writer; ``synchronous=NORMAL``: a commit is
  atomic and survives a crash of the process, only a power cut may forget the last ones) and
  every connection waits up to ``timeout`` seconds for a lock (SQLite's busy timeout). Every
  read-modify-write runs in one ``BEGIN IMMEDIATE`` transaction, so no write is lost and no two
  processes act on the same stale read.
* :meth:`ResultCache.get_or_compute` looks the key up; on a miss it **claims** the key in a
  transaction that checks, again, that neither a result nor a live claim exists. The owner trains
  and then, in one transaction, stores the result and deletes its claim. A process that finds a
  live claim polls every ``poll`` seconds until the result appears (and returns it), the claim
  goes away (it claims the key itself: the owner failed) or the claim is stale.
* A claim is **stale**, and is taken over, when its heartbeat is older than ``stale_after``
  seconds (default :data:`STALE_AFTER_SECONDS`; the owner refreshes it at least once per epoch,
  through the callback that ``compute`` receives, throttled to one write per ``stale_after / 10``
  seconds), or when its owner ran on this host and its pid is gone (or is this process and the
  claim is not one of its live ones). A takeover can at worst train a key twice, never lose it.
* ``wait_timeout`` (default ``None``: wait as long as the claim is live) bounds the wait; after
  it the waiter trains the key itself, with a warning.
* A finished entry is never overwritten: a second result for a stored key (a taken-over claim
  whose owner finished after all, a :meth:`ResultCache.put` of a retrained run) is dropped and
  the stored one returned; a warning says so if they differ in anything but timings. Only an
  entry that cannot be decoded is replaced (it is recomputed, with a warning, as if absent).

Failures
--------
* The file is not a database or is malformed (SQLite ``NOTADB``/``CORRUPT``): under an exclusive
  ``<name>.lock`` file lock (``fcntl``; not serialised where that is missing), the file is
  checked again (``PRAGMA quick_check``) and, if it is still damaged, moved aside with its
  ``-wal``/``-shm`` files to ``<name>.corrupt-<time>-<pid>[-n]`` (a :class:`CacheWarning` names both
  paths) and an empty cache starts in its place. The re-check under the lock makes sure that of
  several processes finding the same damaged file only one moves it, and never a fresh one.
* The file stays locked past the busy timeout: a :class:`CacheWarning`, and that call runs
  without the cache (a lookup misses, a result is not stored; the training still happens). Nothing
  is renamed. A cache never stops a search for a lock.
* A directory at the path, a path that cannot be created, a read-only file or any other error
  when the cache is opened: :class:`CacheError` naming the path; nothing is renamed. The same
  errors after a successful open (say, a full disk) are warnings, and the call runs uncached.

Several hosts must not share a file: SQLite's WAL mode needs shared memory (one machine).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import itertools
import json
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import nasenv
from nasenv.results import PROTOCOL_VERSION, TrainConfig, TrainResult

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "POLL_SECONDS",
    "PROTOCOL_VERSION",
    "SCHEMA_VERSION",
    "STALE_AFTER_SECONDS",
    "CacheError",
    "CacheKey",
    "CacheWarning",
    "ResultCache",
    "default_cache_path",
    "torch_version",
]


SCHEMA_VERSION = 2
"""Layout of the SQLite file (tables ``results_v2`` and ``claims_v2``)."""

STALE_AFTER_SECONDS = 600.0
"""A claim whose heartbeat is older than this is taken over (the owner beats every epoch)."""

BUSY_TIMEOUT_SECONDS = 30.0
"""How long a connection waits for a lock before the call runs without the cache."""

POLL_SECONDS = 0.5
"""How often a process waiting for another's training looks for its result."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS results_v2 (key TEXT PRIMARY KEY, dataset TEXT NOT NULL, "
    "arch TEXT NOT NULL, seed INTEGER NOT NULL, result TEXT NOT NULL, created REAL NOT NULL, "
    "host TEXT NOT NULL, pid INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS claims_v2 (key TEXT PRIMARY KEY, host TEXT NOT NULL, "
    "pid INTEGER NOT NULL, token TEXT NOT NULL, started REAL NOT NULL, heartbeat REAL NOT NULL)",
)
_TIMING_FIELDS = (
    "epoch_seconds",
    "train_seconds",
    "inference_ms",
    "cost_version",
    "epoch_test_seconds",
)
_HOST = socket.gethostname()
_LIVE_TOKENS: set[str] = set()  # claims this process holds now
_LIVE_TOKENS_LOCK = threading.Lock()

T = TypeVar("T")
Heartbeat = Callable[[], None]
ErrorKind = Literal["corrupt", "busy", "other"]


class CacheError(RuntimeError):
    """The cache file cannot be used (a directory at its path, no permission, ...)."""


class CacheWarning(UserWarning):
    """The cache could not help with one call (locked, damaged entry, ...); the search goes on."""


def default_cache_path() -> Path:
    """``$RECNAS_CACHE`` if set, else ``~/.cache/recnas/live.sqlite``."""
    env = os.environ.get("RECNAS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "recnas" / "live.sqlite"


@functools.lru_cache(maxsize=1)
def torch_version() -> str:
    """The installed torch version, read from its package metadata (torch is not imported)."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        import torch
    except ImportError:
        return "absent"
    return str(torch.__version__)


def device_type(device: object) -> str:
    """``"cpu"``, ``"cuda"``, ... of a device string or ``torch.device`` (index dropped)."""
    return str(device).split(":", 1)[0].strip().lower()


@dataclass(frozen=True)
class CacheKey:
    """Everything that makes a stored training result valid; :meth:`current` fills the versions.

    Args:
        dataset: the dataset's SHA-256 (or its name where it has none).
        arch: canonical architecture string.
        seed: training seed.
        config: the training budget (``threads`` is not part of the key).
        device: device type the training runs on.
        package: ``nasenv.__version__`` of the training code.
        protocol: :data:`PROTOCOL_VERSION` of the training code.
        torch: torch version of the training code.
    """

    dataset: str
    arch: str
    seed: int
    config: TrainConfig
    device: str
    package: str
    protocol: int
    torch: str

    @classmethod
    def current(
        cls, dataset: str, arch: str, seed: int, config: TrainConfig, device: object = "cpu"
    ) -> CacheKey:
        """The key of a training run by this process's code (its package, protocol, torch)."""
        return cls(
            dataset=dataset,
            arch=arch,
            seed=seed,
            config=config,
            device=device_type(device),
            package=nasenv.__version__,
            protocol=PROTOCOL_VERSION,
            torch=torch_version(),
        )

    def encode(self) -> str:
        """Canonical JSON: the primary key of the entry."""
        fidelity = {k: v for k, v in dataclasses.asdict(self.config).items() if k != "threads"}
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["config"] = fidelity
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))


@dataclass
class _Claim:
    key: str
    token: str
    beaten: float  # time.time() of the last heartbeat written


@dataclass(frozen=True)
class _Peek:
    result: TrainResult | None
    claimed_by: str | None  # "host:pid" of a live claim
    damaged: str | None = None  # why a stored entry could not be decoded


def _error_kind(error: sqlite3.Error | OSError) -> ErrorKind:
    """Damaged file, lock not obtained, or anything else (permissions, full disk, ...)."""
    code = getattr(error, "sqlite_errorcode", None)  # Python >= 3.11, errors from SQLite itself
    if sys.version_info >= (3, 11) and isinstance(code, int):
        primary = code & 0xFF
        if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return "corrupt"
        if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return "busy"
        return "other"
    message = str(error).lower()  # Python < 3.11: no error codes
    if "not a database" in message or "malformed" in message:
        return "corrupt"
    if "locked" in message or "busy" in message:
        return "busy"
    return "other"


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate it on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's live process
        return True
    return True


def _same_outcome(a: TrainResult, b: TrainResult) -> bool:
    """Equal in everything but wall-clock timings."""

    def canonical(result: TrainResult) -> str:
        data = {k: v for k, v in result.to_dict().items() if k not in _TIMING_FIELDS}
        return json.dumps(data, sort_keys=True)

    return canonical(a) == canonical(b)


def _check_belongs(key: CacheKey, result: TrainResult) -> None:
    if (result.arch, result.seed) != (key.arch, key.seed):
        raise ValueError(
            f"the result of {result.arch} seed {result.seed} does not belong to the key of "
            f"{key.arch} seed {key.seed}"
        )


def _warn(message: str) -> None:
    warnings.warn(message, CacheWarning, stacklevel=3)


class ResultCache:
    """A SQLite store of :class:`TrainResult` values shared by concurrent processes.

    See the module docstring for the keys, the claim protocol and what happens on each failure.

    Args:
        path: the SQLite file (created with its directory if missing).
        timeout: SQLite busy timeout of every connection, seconds.
        stale_after: a claim without a heartbeat for this long is taken over, seconds.
        poll: interval of a waiting process's look-ups, seconds.
        wait_timeout: longest wait for another process's training before training the key here
            as well (``None``: as long as its claim is live).

    Raises:
        CacheError: the path is a directory or the file cannot be opened, created or written.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = BUSY_TIMEOUT_SECONDS,
        stale_after: float = STALE_AFTER_SECONDS,
        poll: float = POLL_SECONDS,
        wait_timeout: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.stale_after = stale_after
        self.poll = poll
        self.wait_timeout = wait_timeout
        self._ready = False  # schema known to exist
        if self.path.is_dir():
            raise CacheError(
                f"the cache path {self.path} is a directory, not a SQLite file; "
                "give a file path (or cache=None to train without a cache)"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CacheError(
                f"cannot create the directory of the cache {self.path}: {error}"
            ) from error
        try:
            try:
                self._create_schema()
            except sqlite3.DatabaseError as error:
                if _error_kind(error) != "corrupt":
                    raise
                self._recover()
        except sqlite3.Error as error:
            if _error_kind(error) != "busy":
                raise CacheError(f"the cache {self.path} cannot be used: {error}") from error
            _warn(
                f"the cache {self.path} stayed locked for {self.timeout:g} s ({error}); "
                "opening it again at its next use"
            )
        except OSError as error:
            raise CacheError(f"the cache {self.path} cannot be used: {error}") from error

    # -- connections -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, timeout: float | None = None) -> Iterator[sqlite3.Connection]:
        """An autocommit connection (transactions are explicit), always closed."""
        db = sqlite3.connect(
            self.path, timeout=self.timeout if timeout is None else timeout, isolation_level=None
        )
        try:
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: no fsync per commit, still atomic
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(
        self, write: bool, timeout: float | None = None
    ) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` (write: the write lock first) or a read transaction; commits on
        success, rolls back on any exception."""
        with self._connect(timeout) as db:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _create_schema(self) -> None:
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: a no-op once the file is WAL
        with self._transaction(write=True) as db:
            for statement in _SCHEMA:
                db.execute(statement)
        self._ready = True

    # -- damaged files ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _recovery_lock(self) -> Iterator[None]:
        """An exclusive lock on ``<name>.lock`` shared by every process recovering this file."""
        if fcntl is None:  # pragma: no cover - not POSIX
            yield
            return
        with open(f"{self.path}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _damage(self) -> str | None:
        """Why the file at the path is damaged, or ``None`` if it is a sound database."""
        try:
            with self._connect() as db:
                rows = db.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as error:
            if _error_kind(error) == "corrupt":
                return str(error)
            raise
        problems = [str(row[0]) for row in rows if row[0] != "ok"]
        return "; ".join(problems[:3]) or None

    def _aside_path(self) -> Path:
        """``<name>.corrupt-<time>-<pid>[-n]``, a name not taken yet (with its -wal, -shm)."""
        stamp = f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        for n in itertools.count():
            aside = self.path.with_name(stamp if n == 0 else f"{stamp}-{n}")
            if not any(Path(f"{aside}{suffix}").exists() for suffix in ("", "-wal", "-shm")):
                return aside
        raise AssertionError("unreachable")  # pragma: no cover

    def _recover(self) -> None:
        """Move the file aside if it is still damaged once this process holds the recovery lock
        (another one may have replaced it already), then create the schema."""
        with self._recovery_lock():
            damage = self._damage()
            if damage is not None:
                aside = self._aside_path()
                for suffix in ("", "-wal", "-shm"):
                    damaged = Path(f"{self.path}{suffix}")
                    if damaged.exists():
                        damaged.replace(Path(f"{aside}{suffix}"))
                _warn(
                    f"{self.path} is not a readable cache ({damage}); moved it to {aside} and "
                    "started an empty one"
                )
            self._create_schema()

    def _attempt(self, action: str, operation: Callable[[], T], consequence: str) -> T | None:
        """``operation()``, or ``None`` (with a warning) where the file does not let it run.

        A damaged file is recovered and the operation retried once; a lock held past the busy
        timeout or any other error makes this call run without the cache.
        """
        for attempt in range(2):
            try:
                if not self._ready:
                    self._create_schema()
                return operation()
            except sqlite3.Error as error:
                problem: sqlite3.Error | OSError = error
                if attempt == 0 and _error_kind(error) == "corrupt":
                    try:
                        self._recover()
                        continue
                    except (sqlite3.Error, OSError) as failure:
                        problem = failure  # report what stopped the recovery
                reason = "stayed locked" if _error_kind(problem) == "busy" else "failed"
                _warn(f"cache {self.path}: {action} {reason} ({problem}); {consequence}")
                return None
        return None  # pragma: no cover - the loop always returns

    # -- entries ---------------------------------------------------------------------------

    @staticmethod
    def _decode(key: CacheKey, text: str) -> TrainResult | str:
        """The stored result, or why it cannot be decoded."""
        try:
            result = TrainResult.from_dict(json.loads(text))
            if (result.arch, result.seed) != (key.arch, key.seed):
                raise ValueError(f"it holds {result.arch} seed {result.seed}")
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            return str(error)
        return result

    @staticmethod
    def _warn_entry(key: CacheKey, problem: str) -> None:
        _warn(f"corrupt cache entry for {key.arch} seed {key.seed} ({problem}); recomputing")

    def get(self, key: CacheKey) -> TrainResult | None:
        """The stored result, or ``None`` if absent, undecodable (recomputed) or unreachable."""

        def read() -> tuple[str | None]:
            with self._connect() as db:
                row = db.execute("SELECT result FROM results_v2 WHERE key=?", (key.encode(),))
                found = row.fetchone()
            return (found[0] if found else None,)

        row = self._attempt("reading", read, "recomputing")
        if row is None or row[0] is None:
            return None
        decoded = self._decode(key, row[0])
        if isinstance(decoded, str):
            self._warn_entry(key, decoded)
            return None
        return decoded

    def put(self, key: CacheKey, result: TrainResult) -> TrainResult:
        """Store ``result`` under ``key`` unless a result is stored there already.

        Returns:
            The entry the cache holds now: ``result``, or the one stored before (a warning says
            so where they differ in more than timings), or ``result`` if it could not be stored.
        """
        _check_belongs(key, result)
        kept = self._attempt("writing", lambda: self._store(key, result, None), "result not cached")
        return result if kept is None else kept

    def _store(self, key: CacheKey, result: TrainResult, claim: _Claim | None) -> TrainResult:
        """Insert unless a decodable entry exists; release ``claim``; one transaction."""
        _check_belongs(key, result)
        encoded = key.encode()
        with self._transaction(write=True) as db:
            row = db.execute("SELECT result FROM results_v2 WHERE key=?", (encoded,)).fetchone()
            decoded = self._decode(key, row[0]) if row else None
            existing = decoded if isinstance(decoded, TrainResult) else None
            if existing is None:  # absent, or an undecodable entry to replace
                db.execute(
                    "INSERT OR REPLACE INTO results_v2 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        encoded,
                        key.dataset,
                        key.arch,
                        key.seed,
                        json.dumps(result.to_dict()),
                        time.time(),
                        _HOST,
                        os.getpid(),
                    ),
                )
            if claim is not None:
                db.execute(
                    "DELETE FROM claims_v2 WHERE key=? AND token=?", (claim.key, claim.token)
                )
        if existing is not None and not _same_outcome(existing, result):
            _warn(
                f"cache {self.path} already holds a different result for {key.arch} seed "
                f"{key.seed}; kept the stored one"
            )
        return existing or result

    # -- claims ----------------------------------------------------------------------------

    def _stale(self, host: str, pid: int, token: str, heartbeat: float, now: float) -> bool:
        if now - heartbeat > self.stale_after:
            return True
        if host != _HOST:
            return False
        if pid == os.getpid():
            with _LIVE_TOKENS_LOCK:
                return token not in _LIVE_TOKENS
        return not _pid_alive(pid)

    def _look(self, db: sqlite3.Connection, key: CacheKey) -> _Peek:
        """The decodable result, else who holds a live claim (inside a transaction)."""
        encoded = key.encode()
        row = db.execute("SELECT result FROM results_v2 WHERE key=?", (encoded,)).fetchone()
        decoded = self._decode(key, row[0]) if row else None
        if isinstance(decoded, TrainResult):
            return _Peek(decoded, None)
        claim = db.execute(
            "SELECT host, pid, token, heartbeat FROM claims_v2 WHERE key=?", (encoded,)
        ).fetchone()
        owner = None
        if claim is not None:
            host, pid, token, heartbeat = claim
            if not self._stale(host, pid, token, heartbeat, now=time.time()):
                owner = f"{host}:{pid}"
        return _Peek(None, owner, decoded)

    def _peek(self, key: CacheKey) -> _Peek:
        with self._transaction(write=False) as db:
            return self._look(db, key)

    def _claim(self, key: CacheKey) -> _Peek | _Claim:
        """Claim the key, unless (checked again under the write lock) a result or a live claim
        is there."""
        with self._transaction(write=True) as db:
            seen = self._look(db, key)
            if seen.result is not None or seen.claimed_by is not None:
                return seen
            now = time.time()
            claim = _Claim(key.encode(), uuid.uuid4().hex, now)
            with _LIVE_TOKENS_LOCK:  # live before it is visible to this process's other threads
                _LIVE_TOKENS.add(claim.token)
            try:
                db.execute(
                    "INSERT OR REPLACE INTO claims_v2 VALUES (?, ?, ?, ?, ?, ?)",
                    (claim.key, _HOST, os.getpid(), claim.token, now, now),
                )
            except BaseException:
                self._forget(claim)
                raise
        return claim

    def _heartbeat(self, claim: _Claim) -> Heartbeat:
        def beat() -> None:
            now = time.time()
            if now - claim.beaten < self.stale_after / 10:
                return
            claim.beaten = now
            with contextlib.suppress(sqlite3.Error), self._transaction(True, timeout=1.0) as db:
                db.execute(
                    "UPDATE claims_v2 SET heartbeat=? WHERE key=? AND token=?",
                    (now, claim.key, claim.token),
                )

        return beat

    @staticmethod
    def _forget(claim: _Claim) -> None:
        with _LIVE_TOKENS_LOCK:
            _LIVE_TOKENS.discard(claim.token)

    def _release(self, claim: _Claim) -> None:
        """Give the key up (best effort: a claim left behind goes stale)."""
        self._forget(claim)
        with contextlib.suppress(sqlite3.Error), self._transaction(write=True) as db:
            db.execute("DELETE FROM claims_v2 WHERE key=? AND token=?", (claim.key, claim.token))

    def get_or_compute(
        self, key: CacheKey, compute: Callable[[Heartbeat], TrainResult]
    ) -> TrainResult:
        """The stored result of ``key``, else ``compute(heartbeat)``'s, stored; at most one
        process computes a key at a time (see the module docstring).

        Args:
            key: what to look up.
            compute: trains the key; it should call ``heartbeat()`` now and then (every epoch)
                so that its claim is not taken for a dead one.

        Returns:
            The cached result (possibly another process's) or the computed one.
        """
        started = time.monotonic()
        warned_entry = False
        while True:
            seen = self._attempt("reading", lambda: self._peek(key), "training without it")
            if seen is None:  # the file refuses: no claim is possible
                return self.put(key, compute(lambda: None))
            if seen.result is not None:
                return seen.result
            if seen.damaged is not None and not warned_entry:  # once per call
                self._warn_entry(key, seen.damaged)
                warned_entry = True
            if seen.claimed_by is None:
                taken = self._attempt("claiming", lambda: self._claim(key), "training anyway")
                if taken is None:
                    return self.put(key, compute(lambda: None))
                if isinstance(taken, _Claim):
                    return self._compute_claimed(key, taken, compute)
                if taken.result is not None:
                    return taken.result
                continue  # claimed by another process in between: wait for it
            waited = time.monotonic() - started
            if self.wait_timeout is not None and waited > self.wait_timeout:
                _warn(
                    f"waited {waited:.0f} s for {seen.claimed_by}'s training of {key.arch} seed "
                    f"{key.seed}; training it here as well"
                )
                return self.put(key, compute(lambda: None))
            time.sleep(self.poll)

    def _compute_claimed(
        self, key: CacheKey, claim: _Claim, compute: Callable[[Heartbeat], TrainResult]
    ) -> TrainResult:
        try:
            result = compute(self._heartbeat(claim))
            kept = self._attempt(
                "writing", lambda: self._store(key, result, claim), "result not cached"
            )
        except BaseException:
            self._release(claim)
            raise
        if kept is None:  # not stored: free the key for the others
            self._release(claim)
            return result
        self._forget(claim)  # deleted with the insert
        return kept

    def __repr__(self) -> str:
        return f"ResultCache({str(self.path)!r})"
