"""The Book-Crossing datasets: registry, loading of the shipped files, checksums.

Book-Crossing (Ziegler et al., 2005) has 1,149,780 ratings of 271,379 books by 278,858 users.
Every rating (explicit 1-10 or implicit 0) is one implicit interaction. A task is a
:class:`DatasetSpec` in :data:`DATASETS`; its prepared arrays ship inside the package as
``nasenv/datasets/<slug>.npz`` (interactions, split, metadata) and ``<slug>-text.npz`` (item text
features), both listed in ``nasenv/datasets/SHA256SUMS`` and verified on every load. Some tasks
also ship item features from an encoder adapted to their training interactions
(``<slug>-text-<encoder>.npz``, :data:`ENCODERS`; recipe and cost in ``ADAPTED.json``), which
``load_dataset(name, encoder=...)`` loads in place of the frozen ones.

Preparation from the raw CSVs lives in :mod:`nasenv.prepare` (``scripts/prepare_data.py``).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasenv.space import ENCODERS

DATA_DIR = Path(__file__).resolve().parent / "datasets"
CHECKSUM_FILE = "SHA256SUMS"

CITATION = (
    "Cai-Nicolas Ziegler, Sean M. McNee, Joseph A. Konstan, Georg Lausen. Improving Recommendation "
    "Lists Through Topic Diversification. Proceedings of the 14th International World Wide Web "
    "Conference (WWW '05), 2005."
)


class ChecksumError(RuntimeError):
    """A data file does not match the SHA-256 recorded for it."""


@dataclass(frozen=True)
class DatasetSpec:
    """One book task: which interactions are kept and how they are split.

    Args:
        name: registry key, e.g. ``"Books-20core"``.
        k: iterative k-core threshold; every user and every item keeps at least ``k`` interactions.
        countries: if given, only users whose location's last field is one of these (lower case).
        split_seed: seed of the per-user train/validation/test split; fixed per task.
        split: fractions of each user's interactions in train, validation and test.
        text_dim: number of principal components kept of the 384-d MiniLM item embeddings.
        description: one line for listings.
    """

    name: str
    k: int
    countries: tuple[str, ...] | None = None
    split_seed: int = 0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    text_dim: int = 64
    description: str = ""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if len(self.split) != 3 or abs(sum(self.split) - 1.0) > 1e-9 or min(self.split) <= 0:
            raise ValueError(
                f"split must be three positive fractions summing to 1, got {self.split}"
            )

    @property
    def slug(self) -> str:
        """File stem of the shipped arrays, e.g. ``books-20core``."""
        return self.name.lower()

    @property
    def files(self) -> tuple[str, str]:
        """Names of the interactions file and of the (frozen) text-features file."""
        return f"{self.slug}.npz", f"{self.slug}-text.npz"

    def text_file(self, encoder: str = "frozen") -> str:
        """Name of the item-features file of ``encoder`` (one of :data:`ENCODERS`)."""
        check_encoder(encoder)
        return self.files[1] if encoder == "frozen" else f"{self.slug}-text-{encoder}.npz"


ADAPT_METHOD = {"finetuned": "full", "lora": "lora"}
"""The :func:`nasenv.adapt.adapt` method that makes each adapted encoder's features."""
ADAPTED_FILE = "ADAPTED.json"
"""The adapted features' provenance: for each file, its recipe, SHA-256, seconds and the
validation criterion that chose the recipe (written by ``scripts/adapt_encoder.py --ship``)."""


def check_encoder(encoder: object) -> None:
    """Raise ``ValueError`` naming ``encoder`` and :data:`ENCODERS` unless it is one of them."""
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}; allowed: {list(ENCODERS)}")


def adapt_command(name: str, encoder: str) -> str:
    """The command that makes (and ships) task ``name``'s features of an adapted ``encoder``;
    the recipe's other flags are in its ``ADAPTED.json`` record."""
    return (
        f"python scripts/adapt_encoder.py --dataset {name} --method {ADAPT_METHOD[encoder]} --ship"
    )


def adapted_provenance(directory: Path = DATA_DIR) -> dict[str, dict[str, Any]]:
    """``{file name: provenance}`` of the adapted feature files in ``directory`` (``{}`` when
    there are none). Each record has ``dataset``, ``encoder``, ``recipe`` (method, pairs,
    epochs, learning rate, batch size, seed), ``adapt_seconds``, ``sha256`` and
    ``val_knn_recall`` (frozen and adapted: the criterion that chose the recipe)."""
    path = directory / ADAPTED_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def adapted_encoders(name: str, directory: str | Path | None = None) -> list[str]:
    """The encoders whose item features exist for task ``name`` in ``directory`` (default: where
    :func:`load_dataset` looks), ``frozen`` first and the adapted ones in the order of
    :data:`ENCODERS`."""
    spec = get_spec(name)
    directory = task_directory(name) if directory is None else Path(directory)
    sums = read_checksums(directory) if (directory / CHECKSUM_FILE).exists() else {}
    return [e for e in ENCODERS if e == "frozen" or spec.text_file(e) in sums]


def adapt_seconds(name: str, encoder: str, directory: str | Path | None = None) -> float:
    """The one-off cost of ``encoder``'s item features of task ``name``: the adaptation's
    measured seconds on 2 cores, from ``ADAPTED.json`` (0 for ``frozen``, shared by every
    task). Raises ``FileNotFoundError`` naming the command that makes them where they are not
    there."""
    check_encoder(encoder)
    if encoder == "frozen":
        return 0.0
    directory = task_directory(name) if directory is None else Path(directory)
    record = adapted_provenance(directory).get(get_spec(name).text_file(encoder))
    if record is None:
        raise FileNotFoundError(
            f"{name} has no {encoder!r} item features in {directory} (it has: "
            f"{adapted_encoders(name, directory)}); make them with: {adapt_command(name, encoder)}"
        )
    return float(record["adapt_seconds"])


USA = ("usa", "us", "united states", "united state", "u.s.a.")
"""Spellings of the United States among the users' locations."""
EUROPE = (
    *("germany", "deutschland", "united kingdom", "england", "scotland", "wales", "spain"),
    *("españa", "catalonia", "catalunya", "euskal herria", "france", "la france", "portugal"),
    *("netherlands", "switzerland", "italy", "italia", "austria", "ireland", "belgium"),
    *("denmark", "norway", "sweden", "finland", "poland", "greece", "czech republic"),
    *("luxembourg", "iceland", "slovenia", "hungary", "slovakia", "romania", "bulgaria"),
)
"""European countries (and local spellings) among the users' locations. No single European
country keeps enough users under a k-core of at least 5 (Germany: 232 users, the United Kingdom:
242), so the European task pools them."""

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("Books-20core", k=20, description="all users, 20-core (benchmark default)"),
        DatasetSpec("Books-10core", k=10, description="all users, 10-core"),
        DatasetSpec("Books-USA-20core", k=20, countries=USA, description="US users, 20-core"),
        DatasetSpec(
            "Books-Canada-5core", k=5, countries=("canada",), description="Canadian users, 5-core"
        ),
        DatasetSpec(
            "Books-Europe-5core", k=5, countries=EUROPE, description="European users, 5-core"
        ),
    )
}
PREPARABLE: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "Books-5core",
            k=5,
            description="all users, 5-core (not shipped: prepared into the data home)",
        ),
    )
}
"""Book tasks too large to ship (Books-5core: 15,233 users, 36,055 items, 565,080 interactions)
that ``recnas data prepare NAME`` builds from the raw files into the data home, where they are
local tasks (:mod:`nasenv.userdata`)."""
DEFAULT_DATASET = "Books-20core"
TRAINING_TASKS = ("Books-20core", "Books-10core", "Books-USA-20core")
"""Tasks a transfer or meta-learning agent may learn from."""
HELD_OUT_TASKS = ("Books-Canada-5core", "Books-Europe-5core")
"""Tasks kept for measuring transfer: smaller, sparser user groups from outside the United States
(the training tasks are dominated by US users). Their most active users can also be in the
all-user tasks, as when a platform's model moves from one market to another."""


def get_spec(name: str) -> DatasetSpec:
    """The task ``name``: a shipped one (:data:`DATASETS`) or a local one registered in the
    data home (:mod:`nasenv.userdata`). An unknown name raises ``ValueError`` listing both."""
    if name in DATASETS:
        return DATASETS[name]
    task = _local(name)
    if task is None and name in PREPARABLE:
        raise ValueError(
            f"{name} is not shipped (too large) and not prepared yet; prepare it into the data "
            f"home with: recnas data prepare {name}"
        )
    if task is None:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known_datasets()}")
    return task.spec


def known_datasets() -> list[str]:
    """The shipped tasks' names, then the local tasks' (each sorted)."""
    from nasenv.userdata import local_tasks

    return [*sorted(DATASETS), *local_tasks()]


def task_directory(name: str) -> Path:
    """Where task ``name``'s files are: the package's ``nasenv/datasets`` for a shipped task,
    the task's own directory in the data home for a local one."""
    task = None if name in DATASETS else _local(name)
    return DATA_DIR if task is None else Path(task.directory)


def _local(name: str) -> Any:
    """The local task ``name`` (a :class:`nasenv.userdata.LocalTask`) or ``None``."""
    from nasenv.userdata import find_local  # it imports this module

    return find_local(name) if isinstance(name, str) else None


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array`` (the array itself keeps its flags): writing into the view
    raises ``ValueError: assignment destination is read-only``. Loaded datasets and tables hand
    out only such views, because their loaders are cached: one caller's write would otherwise
    change what every later caller in the process gets."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(array).__name__}")
    view = array.view()
    view.setflags(write=False)
    return view


@dataclass(frozen=True, eq=False)
class BooksDataset:
    """A prepared book task: interactions split per user, item metadata and item text features.

    Interaction arrays are ``int64`` of shape ``(n, 2)`` holding ``(user, item)`` indices, sorted.
    ``user_id`` and ``item_isbn`` are the raw ids of the users and items, by index (an imported
    task's ``item_isbn`` holds its own item ids; ``user_id`` defaults to the indices).
    Every array is stored as a read-only view (:func:`read_only`): :func:`load_dataset` caches
    what it loads, so a dataset is shared by everything in the process that loads the same task.
    Copy an array (``np.array(dataset.train)``) to change it.

    ``encoder`` says which item features ``item_text`` holds (:data:`ENCODERS`). ``sha256`` is
    the interactions file's SHA-256 for the frozen features; with adapted ones it is the SHA-256
    of both files' checksums (``"<interactions>:<features>"``), so that every cache keyed by it
    (the live training cache, an exported model) tells the two apart.
    """

    name: str
    n_users: int
    n_items: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    item_text: np.ndarray
    item_isbn: np.ndarray
    item_title: np.ndarray
    item_author: np.ndarray
    user_country: np.ndarray
    sha256: str = field(default="")
    user_id: np.ndarray | None = None
    encoder: str = "frozen"

    def __post_init__(self) -> None:
        if self.user_id is None:  # a dataset built in code: users are their indices
            object.__setattr__(self, "user_id", np.arange(self.n_users))
        for name in _DATASET_ARRAYS:
            try:
                view = read_only(getattr(self, name))
            except TypeError as error:
                raise TypeError(f"BooksDataset.{name}: {error}") from None
            object.__setattr__(self, name, view)

    @property
    def n_interactions(self) -> int:
        return len(self.train) + len(self.val) + len(self.test)

    def summary(self) -> str:
        density = self.n_interactions / (self.n_users * self.n_items)
        return (
            f"{self.name}: {self.n_users:,} users, {self.n_items:,} items, "
            f"{self.n_interactions:,} interactions (density {density:.4f}; "
            f"train/val/test {len(self.train):,}/{len(self.val):,}/{len(self.test):,})"
        )


_DATASET_ARRAYS = (
    *("train", "val", "test", "item_text", "item_isbn", "item_title", "item_author"),
    *("user_country", "user_id"),
)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(directory: Path) -> None:
    """Write ``SHA256SUMS`` (``sha256sum`` format) for every ``.npz`` in ``directory``, by an
    atomic rename: a reader never sees a partial list."""
    lines = [f"{sha256_of(p)}  {p.name}\n" for p in sorted(directory.glob("*.npz"))]
    tmp = directory / f"{CHECKSUM_FILE}.tmp"
    tmp.write_text("".join(lines))
    tmp.replace(directory / CHECKSUM_FILE)


def read_checksums(directory: Path) -> dict[str, str]:
    """Parse a ``sha256sum``-format file (``<hex>  <name>`` per line) into ``{name: hex}``."""
    path = directory / CHECKSUM_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {CHECKSUM_FILE} in {directory}; run scripts/prepare_data.py")
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def listed_file(directory: Path, filename: str, kind: str, how_to_make: str) -> tuple[Path, str]:
    """``(path, recorded SHA-256)`` of a file listed in ``directory``'s ``SHA256SUMS``.

    Raises:
        FileNotFoundError: not listed; the message names the ``kind`` of file, the file and
            ``how_to_make`` it.
    """
    sums = read_checksums(directory) if (directory / CHECKSUM_FILE).exists() else {}
    if filename not in sums:
        raise FileNotFoundError(
            f"no {kind} {filename} listed in {directory / CHECKSUM_FILE}; {how_to_make}"
        )
    return directory / filename, sums[filename]


def read_listed(
    directory: Path, filename: str, kind: str, how_to_make: str
) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of a file listed in ``directory``'s ``SHA256SUMS``, verified against it, and
    its SHA-256: the one way every shipped file (task, table, surrogate, leaderboard) is read.

    Raises:
        FileNotFoundError: not listed (as :func:`listed_file`).
        ChecksumError: the file's SHA-256 differs from the recorded one.
    """
    path, expected = listed_file(directory, filename, kind, how_to_make)
    verify_file(path, expected, f"Reinstall the package or {how_to_make}.")
    return read_npz(path), expected


def verify_file(
    path: Path,
    expected: str,
    hint: str = "Reinstall the package or re-run scripts/prepare_data.py.",
) -> None:
    """Raise :class:`ChecksumError` naming the file and both hashes unless they match."""
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumError(
            f"{path} is corrupt or was modified: expected SHA-256 {expected}, got {actual}. {hint}"
        )


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an ``.npz`` whose bytes depend only on the arrays (fixed names order and timestamps).

    ``numpy.savez_compressed`` stamps the current time into the zip, which would make every
    preparation run produce different bytes; this writer does not.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            array = np.asarray(arrays[key], order="C")  # (ascontiguousarray makes 0-d 1-d)
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=9)
    tmp.replace(path)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` with pickle disabled."""
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def load_dataset(
    name: str = DEFAULT_DATASET, directory: str | Path | None = None, encoder: str = "frozen"
) -> BooksDataset:
    """Load a task, verifying both files against ``SHA256SUMS``.

    The result is cached per ``(name, directory, encoder, recorded checksums)`` and shared: its
    arrays are read-only. A local task imported anew under the same name is loaded anew.

    Args:
        name: a shipped task (:data:`DATASETS`) or a local one (:mod:`nasenv.userdata`).
        directory: where the files are; defaults to the package's shipped ``nasenv/datasets``
            for a shipped task and to the task's own directory for a local one.
        encoder: whose item features to load (:data:`ENCODERS`): the frozen MiniLM ones
            (default) or, where they ship (:func:`adapted_encoders`), those of an encoder
            adapted to the task's training interactions.

    Raises:
        ValueError: unknown ``name`` or ``encoder``.
        FileNotFoundError: the files were never prepared in ``directory`` (for an adapted
            encoder: the message lists the encoders this task has).
        ChecksumError: a file's SHA-256 differs from the recorded one.
    """
    spec = get_spec(name)
    check_encoder(encoder)
    directory = task_directory(name) if directory is None else Path(directory)
    sums = read_checksums(directory) if (directory / CHECKSUM_FILE).exists() else {}
    text_file = spec.text_file(encoder)
    if encoder != "frozen" and text_file not in sums:
        raise FileNotFoundError(
            f"{name} has no {encoder!r} item features in {directory} (it has: "
            f"{adapted_encoders(name, directory)}); make them with: "
            f"{adapt_command(name, encoder)}"
        )
    return _load_cached(
        spec, directory, encoder, sums.get(spec.files[0], ""), sums.get(text_file, "")
    )


def with_encoder(dataset: BooksDataset, encoder: str) -> BooksDataset:
    """``dataset`` with the item features of ``encoder``, for an architecture's ``encoder``
    decision (:data:`nasenv.space.ENCODER_SLOTS`): ``dataset`` itself for ``frozen`` (whatever
    features it was loaded with) and for its own encoder, else the task loaded with that encoder
    (:func:`load_dataset`, verified), whose interactions must be ``dataset``'s.

    Raises:
        ValueError: the task loaded by name holds other interactions than ``dataset``, or
            ``dataset`` is no registered task (a dataset built in code has no adapted features).
        FileNotFoundError: the task has no such features (the message names the command).
    """
    check_encoder(encoder)
    if encoder == "frozen" or encoder == dataset.encoder:
        return dataset
    adapted = load_dataset(dataset.name, encoder=encoder)
    if adapted.n_items != dataset.n_items or not all(
        np.array_equal(getattr(adapted, part), getattr(dataset, part))
        for part in ("train", "val", "test")
    ):
        raise ValueError(
            f"the {encoder!r} features of {dataset.name} belong to other interactions than this "
            f"dataset's (load it with load_dataset({dataset.name!r}) to use them)"
        )
    return adapted


@functools.lru_cache(maxsize=8)
def _load_cached(
    spec: DatasetSpec, directory: Path, encoder: str, recorded: str, recorded_text: str
) -> BooksDataset:
    """``recorded``, ``recorded_text``: both files' checksums in ``SHA256SUMS`` (part of the
    cache key only)."""
    if spec.name in DATASETS:
        how = f"prepare it with: python scripts/prepare_data.py --dataset {spec.name}"
    else:
        how = f"import it again: recnas data import FILE --name {spec.name} --force"
    if encoder != "frozen":
        how = f"make it again: {adapt_command(spec.name, encoder)}"
    main_file, text_file = spec.files[0], spec.text_file(encoder)
    arrays, sha256 = read_listed(directory, main_file, "dataset", how)
    text, text_sha256 = read_listed(directory, text_file, "item-feature file", how)
    if len(text["item_text"]) != len(arrays["item_isbn"]):
        raise ValueError(
            f"{directory / text_file} has features of {len(text['item_text'])} items; "
            f"{spec.name} has {len(arrays['item_isbn'])}"
        )
    if encoder != "frozen":
        sha256 = hashlib.sha256(f"{sha256}:{text_sha256}".encode()).hexdigest()
    return BooksDataset(
        name=spec.name,
        n_users=len(arrays["user_country"]),
        n_items=len(arrays["item_isbn"]),
        train=arrays["train"].astype(np.int64),
        val=arrays["val"].astype(np.int64),
        test=arrays["test"].astype(np.int64),
        item_text=text["item_text"].astype(np.float32),
        item_isbn=arrays["item_isbn"],
        item_title=arrays["item_title"],
        item_author=arrays["item_author"],
        user_country=arrays["user_country"],
        sha256=sha256,
        user_id=arrays["user_id"],
        encoder=encoder,
    )
