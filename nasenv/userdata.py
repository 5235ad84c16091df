"""Local tasks: prepared datasets registered in a user data directory, beside the shipped ones.

A local task is a directory ``<data home>/tasks/<name>/`` holding the same two files as a
shipped task (``<slug>.npz`` with the interactions and metadata, ``<slug>-text.npz`` with the
item text features), a ``SHA256SUMS`` over both, and ``task.json``: the recipe's parameters and
the provenance (source files and their SHA-256, counts, the feature model and its cost). Every
load verifies the checksums, as for shipped tasks, and the name works wherever a task name does
(``gym.make(..., dataset=name)``, every agent, ``--dataset`` of every command), except where a
shipped table or surrogate is needed: a local task is searched with live training.

The data home is ``$RECNAS_DATA_DIR`` if set, else ``$XDG_DATA_HOME/recnas``, else
``~/.local/share/recnas``. A task is written into a temporary directory next to its final
place and renamed there only once complete, so an interrupted import registers nothing.

Tasks are made by :func:`nasenv.importer.import_interactions` (``recnas data import``) and by
``scripts/prepare_data.py --local`` (book tasks too large to ship, such as Books-5core).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasenv.data import DATASETS, DatasetSpec, write_checksums, write_npz

DATA_HOME_ENV = "RECNAS_DATA_DIR"
"""Environment variable naming the data home (default: ``$XDG_DATA_HOME/recnas``)."""
TASK_FILE = "task.json"
FORMAT = 1
"""Version of the local task layout, recorded in ``task.json``."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What a local task's name may be: a letter or digit, then up to 63 of letters, digits and
``._-`` (it becomes a directory and a file stem)."""


def data_home() -> Path:
    """The data home: ``$RECNAS_DATA_DIR``, else ``$XDG_DATA_HOME/recnas``, else
    ``~/.local/share/recnas`` (read at every call, so a process may change it)."""
    if os.environ.get(DATA_HOME_ENV):
        return Path(os.environ[DATA_HOME_ENV]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(xdg) / "recnas"


def _tasks_dir(home: Path | None) -> Path:
    return (data_home() if home is None else Path(home)) / "tasks"


@dataclass(frozen=True)
class LocalTask:
    """A registered local task: its spec, where it lives and what ``task.json`` records."""

    spec: DatasetSpec
    directory: Path
    info: dict[str, Any]


def check_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` can name a new local task: it matches
    :data:`NAME_PATTERN` and is not (in any letter case) a shipped task's name."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"task name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    shipped = {n.lower(): n for n in DATASETS}
    if name.lower() in shipped:
        raise ValueError(f"task name {name!r} is taken by the shipped task {shipped[name.lower()]}")


def _read_task(directory: Path) -> LocalTask:
    info = json.loads((directory / TASK_FILE).read_text(encoding="utf-8"))
    recipe = info["recipe"]
    spec = DatasetSpec(
        name=info["name"],
        k=int(recipe["k"]),
        split_seed=int(recipe["split_seed"]),
        split=tuple(float(f) for f in recipe["split"]),  # type: ignore[arg-type]
        text_dim=int(info["features"]["dim"]),
        description=str(info.get("description", "")),
    )
    return LocalTask(spec, directory, info)


def local_tasks(home: Path | None = None) -> dict[str, LocalTask]:
    """Every complete local task of the data home (``home``: another one), by name.

    Directories without a readable ``task.json`` (a temporary one of an import under way, or
    one a user made) are skipped."""
    tasks_dir = _tasks_dir(home)
    found: dict[str, LocalTask] = {}
    if not tasks_dir.is_dir():
        return found
    for directory in sorted(tasks_dir.iterdir()):
        if directory.name.startswith(".") or not (directory / TASK_FILE).is_file():
            continue
        try:
            task = _read_task(directory)
        except (ValueError, KeyError, TypeError):
            continue
        found[task.spec.name] = task
    return found


def find_local(name: str, home: Path | None = None) -> LocalTask | None:
    """The local task ``name``, or ``None``."""
    directory = _tasks_dir(home) / name
    if not (directory / TASK_FILE).is_file():
        return None
    task = _read_task(directory)
    return task if task.spec.name == name else None


def register_task(
    name: str,
    arrays: Mapping[str, np.ndarray],
    text: np.ndarray,
    info: Mapping[str, Any],
    *,
    home: Path | None = None,
    overwrite: bool = False,
) -> LocalTask:
    """Write a prepared task into the data home, atomically, and return it.

    Args:
        name: the task's name (:func:`check_name`).
        arrays: the interaction/metadata arrays, as :func:`nasenv.prepare.build_task` makes them
            (``train``, ``val``, ``test``, ``user_id``, ``user_country``, ``item_isbn``,
            ``item_title``, ``item_author``, ...).
        text: ``(n_items, d)`` item text features (``d`` may be 0: an ID-only task).
        info: ``task.json``'s content: ``recipe`` (``k``, ``split``, ``split_seed``, ...),
            ``features`` (``dim``, ``model``, ...) and anything else worth keeping.
        home: another data home (default :func:`data_home`).
        overwrite: replace a task of that name; otherwise its existence is an error.

    Raises:
        ValueError: a bad name, or a task of that name exists and ``overwrite`` is false.
    """
    check_name(name)
    tasks_dir = _tasks_dir(home)
    final = tasks_dir / name
    if (final / TASK_FILE).exists() and not overwrite:
        raise ValueError(
            f"a local task {name!r} exists in {tasks_dir}; choose another name or replace it "
            "(--force, overwrite=True)"
        )
    tasks_dir.mkdir(parents=True, exist_ok=True)
    spec = DatasetSpec(name, k=1)  # only for the file names
    main_file, text_file = spec.files
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=tasks_dir))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would hide it from the user's other accounts
        write_npz(staging / main_file, arrays)
        write_npz(staging / text_file, {"item_text": np.asarray(text, dtype=np.float16)})
        write_checksums(staging)
        document = {"format": FORMAT, "name": name, **info}
        (staging / TASK_FILE).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        if final.exists():  # overwrite: move the old one aside, the new one in, then drop it
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=tasks_dir))
            final.rename(old / name)
            staging.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _read_task(final)


def remove_task(name: str, home: Path | None = None) -> Path:
    """Delete the local task ``name`` and return where it was; ``ValueError`` if there is none
    (naming the local tasks there are)."""
    task = find_local(name, home)
    if task is None:
        known = sorted(local_tasks(home))
        raise ValueError(f"no local task {name!r} in {_tasks_dir(home)}; local tasks: {known}")
    shutil.rmtree(task.directory)
    return task.directory
