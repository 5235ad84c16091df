"""The final model of a search: its architecture retrained, exported to one file, and served.

:func:`train_final` trains an architecture at the converged budget
(:data:`nasenv.results.FIDELITIES` ``["converged"]``) once per fresh seed
(:func:`nasenv.evaluators.fresh_seeds`: 1000, 1001, ..., never a seed of the search), reports
every seed's validation and test Recall@20 / NDCG@20, and keeps the seed with the best
validation Recall@20 (ties: the first seed), with the weights of its best validation epoch. Test
metrics are reported only: they never choose the seed, the epoch or anything else.

A :class:`FinalModel` holds those weights and the user and item representations of that epoch,
so that :meth:`FinalModel.recommend` ranks items with one product per chunk of users and no
graph propagation. It ranks every item except, by default, those the user interacted with in
the training, validation *and* test interactions (all that the dataset knows of the user).

File format (:meth:`FinalModel.save`, :func:`load_model`): one ``.npz`` written by
:func:`nasenv.data.write_npz` (its bytes depend only on its contents) and read with
``allow_pickle=False``: nothing in it can run code when loaded, as with safetensors or
``torch.load(..., weights_only=True)``, and it is the format of every other file this package
ships. Its arrays:

* ``weight/<name>``: every parameter of the :class:`~nasenv.models.GraphRecommender`, by its
  ``named_parameters()`` name (no buffer: the graph and the item text features are the
  dataset's, rebuilt from it by :meth:`FinalModel.to_module`);
* ``user_repr`` ``(n_users, d)`` and ``item_repr`` ``(n_items, d)``: float32 representations;
* ``user_id`` and ``item_id``: the raw ids by index (the dataset's ``user_id`` and
  ``item_isbn``);
* ``meta``: a JSON string with ``format`` (:data:`FORMAT`), ``format_version``
  (:data:`FORMAT_VERSION`), ``package_version``, ``torch_version``, ``arch``, ``dataset``,
  ``dataset_sha256``, ``seeds``, ``seed`` (the chosen one), ``k`` and ``results`` (every seed's
  :meth:`~nasenv.results.TrainResult.to_dict`).

A model refuses a dataset whose SHA-256 differs from the one it was trained on
(:class:`~nasenv.data.ChecksumError`, naming both).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from nasenv.data import (
    BooksDataset,
    ChecksumError,
    load_dataset,
    read_npz,
    read_only,
    with_encoder,
    write_npz,
)
from nasenv.evaluators import fresh_seeds
from nasenv.metrics import SCORE_CELLS, PairSet
from nasenv.models import GraphRecommender, build_graph
from nasenv.results import FIDELITIES, TOP_K, TrainConfig, TrainResult
from nasenv.space import Architecture
from nasenv.train import TrainingContext, train_architecture

__all__ = [
    "DEFAULT_SEEDS",
    "EXCLUDE",
    "FORMAT",
    "FORMAT_VERSION",
    "FinalModel",
    "Recommendations",
    "UnknownUserError",
    "load_model",
    "read_metadata",
    "train_final",
]

FORMAT = "recnas-final-model"
"""``meta["format"]`` of a model file."""
FORMAT_VERSION = 1
"""``meta["format_version"]`` this version writes; files of a later version are refused."""
EXCLUDE = ("all", "train", "none")
"""What :meth:`FinalModel.recommend` leaves out: every known interaction of the user (train,
validation and test), the training interactions only, or nothing."""
Exclude = Literal["all", "train", "none"]
DEFAULT_SEEDS = fresh_seeds(3)
"""The seeds :func:`train_final` trains by default: 1000, 1001, 1002."""


class UnknownUserError(KeyError):
    """A user id that the model's dataset does not have (the message says how many it has)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, eq=False)
class Recommendations:
    """The top-k items of a batch of users, best first; row ``r`` is ``users[r]``.

    Where fewer than ``k`` items are left to recommend, the row ends with item ``-1``, id and
    title ``""`` and score ``-inf``. ``item_ids`` and ``titles`` are looked up when first read.
    """

    users: np.ndarray
    """``(n,)`` raw user ids."""
    items: np.ndarray
    """``(n, k)`` item indices."""
    scores: np.ndarray
    """``(n, k)`` float32 scores (dot products of the representations)."""
    all_item_ids: np.ndarray = dataclasses.field(repr=False)
    """The raw id of every item, by index."""
    all_titles: np.ndarray = dataclasses.field(repr=False)
    """The title of every item, by index."""

    def __len__(self) -> int:
        return len(self.users)

    @functools.cached_property
    def item_ids(self) -> np.ndarray:
        """``(n, k)`` raw item ids."""
        return _look_up(self.all_item_ids, self.items)

    @functools.cached_property
    def titles(self) -> np.ndarray:
        """``(n, k)`` item titles."""
        return _look_up(self.all_titles, self.items)

    def ranking(self, row: int) -> list[dict[str, Any]]:
        """Row ``row`` as JSON-ready dicts ``{rank, item, item_id, title, score}``."""
        return [
            {
                "rank": rank,
                "item": int(item),
                "item_id": str(self.all_item_ids[item]),
                "title": str(self.all_titles[item]),
                "score": float(score),
            }
            for rank, (item, score) in enumerate(
                zip(self.items[row], self.scores[row], strict=True), start=1
            )
            if item >= 0
        ]


def _look_up(table: np.ndarray, items: np.ndarray) -> np.ndarray:
    values = table[items]
    missing = items < 0
    return np.where(missing, "", values) if missing.any() else values


@dataclass(frozen=True, eq=False)
class FinalModel:
    """A trained architecture ready to recommend (made by :func:`train_final` or
    :func:`load_model`). Its arrays are read-only.

    Args:
        arch: the architecture.
        dataset: the task it was trained on; titles and interactions come from it.
        dataset_sha256: the SHA-256 recorded at training; ``dataset.sha256`` must equal it.
        results: every seed's training, in the order trained.
        seed: the chosen seed (best validation Recall@20).
        weights: the chosen seed's parameters at its best validation epoch, by name.
        user_repr: ``(n_users, d)`` representations of that epoch.
        item_repr: ``(n_items, d)`` representations of that epoch.
        user_ids: raw user ids by index.
        item_ids: raw item ids by index.
        k: the cut-off of the results' Recall@K and NDCG@K.
    """

    arch: Architecture
    dataset: BooksDataset
    dataset_sha256: str
    results: tuple[TrainResult, ...]
    seed: int
    weights: Mapping[str, np.ndarray]
    user_repr: np.ndarray
    item_repr: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    k: int = TOP_K

    def __post_init__(self) -> None:
        _check_checksum(self.dataset, self.dataset_sha256, "this model", "a dataset")
        frozen = {name: read_only(np.asarray(w)) for name, w in self.weights.items()}
        object.__setattr__(self, "weights", MappingProxyType(frozen))
        for name in ("user_repr", "item_repr", "user_ids", "item_ids"):
            object.__setattr__(self, name, read_only(np.asarray(getattr(self, name))))
        data = self.dataset
        for kind, n, rows, ids in (
            ("users", data.n_users, len(self.user_repr), len(self.user_ids)),
            ("items", data.n_items, len(self.item_repr), len(self.item_ids)),
        ):
            if rows != n or ids != n:
                raise ValueError(
                    f"{data.name} has {n} {kind}; the model {rows} representations, {ids} ids"
                )
        if self.user_repr.shape[1:] != self.item_repr.shape[1:] or self.user_repr.ndim != 2:
            raise ValueError(
                f"user and item representations of shapes {self.user_repr.shape} and "
                f"{self.item_repr.shape} do not match"
            )
        if not np.array_equal(self.user_ids, np.asarray(self.dataset.user_id)) or not (
            np.array_equal(self.item_ids, np.asarray(self.dataset.item_isbn))
        ):
            raise ValueError(f"the model's user or item ids are not those of {self.dataset.name}")
        if self.seed not in {r.seed for r in self.results}:
            raise ValueError(f"chosen seed {self.seed} is not among the results' seeds")

    @property
    def result(self) -> TrainResult:
        """The chosen seed's training."""
        return next(r for r in self.results if r.seed == self.seed)

    @property
    def dataset_name(self) -> str:
        return self.dataset.name

    def user_index(self, user: str | int) -> int:
        """The index of the raw user id ``user`` (compared as text: ``243`` and ``"243"`` are
        one id). Raises :class:`UnknownUserError` for an id the dataset does not have."""
        try:
            return self._user_lookup[str(user)]
        except KeyError:
            examples = ", ".join(str(u) for u in self.user_ids[:3].tolist())
            raise UnknownUserError(
                f"unknown user {str(user)!r}: {self.dataset_name} has {len(self.user_ids):,} "
                f"users (ids such as {examples})"
            ) from None

    def recommend(
        self,
        users: Iterable[str | int] | str | int | None = None,
        k: int = 10,
        exclude: Exclude = "all",
    ) -> Recommendations:
        """The top-``k`` items of each of ``users`` (raw ids; ``None``: every user).

        Args:
            users: one raw user id or several.
            k: items per user, ``1 <= k <= n_items``.
            exclude: the items left out (:data:`EXCLUDE`): ``"all"``, every item the user
                interacted with in train, validation or test; ``"train"``, the training items
                only (what validation and test rank against); ``"none"``.

        Scores are computed for one chunk of users at a time (at most ``4096`` users, and
        :data:`nasenv.metrics.SCORE_CELLS` scores), never for every user at once.
        """
        if exclude not in EXCLUDE:
            raise ValueError(f"unknown exclude {exclude!r}; allowed: {list(EXCLUDE)}")
        n_items = self.dataset.n_items
        if not 1 <= k <= n_items:
            raise ValueError(f"k must be in [1, {n_items}], got {k}")
        if users is None:
            index = torch.arange(self.dataset.n_users)
        else:
            wanted = [users] if isinstance(users, (str, int, np.integer)) else list(users)
            index = torch.tensor([self.user_index(u) for u in wanted], dtype=torch.long)
        seen = self._seen(exclude)
        user_repr, item_repr = self._tensors
        chunk = max(1, min(4096, SCORE_CELLS // n_items))
        items, scores = [], []
        with torch.no_grad():
            for part in index.split(chunk):
                score = user_repr[part] @ item_repr.T
                if seen is not None:
                    score.masked_fill_(seen.rows(part), -math.inf)
                top = score.topk(k, dim=1)
                items.append(top.indices.masked_fill(top.values == -math.inf, -1))
                scores.append(top.values)
        top_items = torch.cat(items).numpy() if items else np.zeros((0, k), dtype=np.int64)
        top_scores = torch.cat(scores).numpy() if scores else np.zeros((0, k), dtype=np.float32)
        return Recommendations(
            self.user_ids[index.numpy()],
            top_items,
            top_scores,
            self._item_id_text,
            self.dataset.item_title,
        )

    def to_module(self, dataset: BooksDataset | None = None) -> GraphRecommender:
        """The :class:`~nasenv.models.GraphRecommender` with these weights, on ``dataset``'s
        training graph (default: the model's dataset; refused if its SHA-256 differs), in
        evaluation mode. Its ``forward()`` gives :attr:`user_repr` and :attr:`item_repr` again.
        Torch's global random generator is left as it was."""
        dataset = self.dataset if dataset is None else dataset
        _check_checksum(dataset, self.dataset_sha256, "this model", self.dataset_name)
        graph = build_graph(torch.tensor(dataset.train), dataset.n_users, dataset.n_items)
        with torch.random.fork_rng(devices=[]):  # the initial draws are replaced below
            module = GraphRecommender(self.arch, graph, torch.tensor(dataset.item_text))
        state = {name: torch.tensor(w) for name, w in self.weights.items()}
        missing, unexpected = module.load_state_dict(state, strict=False)
        buffers = {name for name, _ in module.named_buffers()}
        if unexpected or set(missing) - buffers:
            raise ValueError(
                f"the weights do not fit {self.arch.to_string()}: missing "
                f"{sorted(set(missing) - buffers)}, unexpected {sorted(unexpected)}"
            )
        return module.eval()

    def summary(self) -> str:
        """A table of every seed's training (validation and test metrics, the chosen seed)."""
        k, config = self.k, self.results[0].config
        lines = [
            f"{self.arch.to_string()} on {self.dataset_name}: {len(self.results)} "
            f"seed{'s' if len(self.results) != 1 else ''}, "
            f"max_epochs={config.max_epochs}, patience={config.patience}",
            f"{'seed':>6} {'status':6} {'epochs':>6} {'best':>4} {f'val R@{k}':>9} "
            f"{f'val N@{k}':>9} {f'test R@{k}':>10} {f'test N@{k}':>10} {'cost s':>8}",
        ]
        for r in self.results:
            lines.append(
                f"{r.seed:>6} {r.status:6} {len(r.val_recall):>6} {r.best_epoch:>4} "
                f"{r.val_recall_best:>9.4f} {r.val_ndcg_best:>9.4f} {r.test_recall:>10.4f} "
                f"{r.test_ndcg:>10.4f} {r.cost_seconds:>8.1f}"
                + ("  <- chosen" if r.seed == self.seed else "")
            )
        ok = [r for r in self.results if r.ok]
        if len(ok) > 1:
            recall, ndcg = (
                np.array([getattr(r, m) for r in ok]) for m in ("test_recall", "test_ndcg")
            )
            lines.append(
                f"test over the {len(ok)} seeds: Recall@{k} {recall.mean():.4f} ± "
                f"{recall.std(ddof=1):.4f}, NDCG@{k} {ndcg.mean():.4f} ± {ndcg.std(ddof=1):.4f}"
            )
        lines.append(
            f"chosen: seed {self.seed}, the best validation Recall@{k} (test metrics are "
            "reported, never used to choose)"
        )
        return "\n".join(lines)

    def metadata(self) -> dict[str, Any]:
        """The ``meta`` JSON of the file (see the module docstring)."""
        import nasenv

        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": nasenv.__version__,
            "torch_version": torch.__version__,
            "arch": self.arch.to_string(),
            "dataset": self.dataset_name,
            "dataset_sha256": self.dataset_sha256,
            "seeds": [r.seed for r in self.results],
            "seed": self.seed,
            "k": self.k,
            "results": [r.to_dict() for r in self.results],
        }

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (one ``.npz``, byte-stable); returns the path."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {f"weight/{n}": w for n, w in self.weights.items()}
        arrays |= {
            "user_repr": self.user_repr,
            "item_repr": self.item_repr,
            "user_id": self.user_ids,
            "item_id": self.item_ids,
            "meta": np.array(json.dumps(self.metadata(), sort_keys=True)),
        }
        write_npz(path, arrays)
        return path

    @functools.cached_property
    def _user_lookup(self) -> dict[str, int]:
        return {str(user): i for i, user in enumerate(self.user_ids.tolist())}

    @functools.cached_property
    def _item_id_text(self) -> np.ndarray:
        return self.item_ids.astype(str)

    @functools.cached_property
    def _tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(self.user_repr), torch.tensor(self.item_repr)

    @functools.cached_property
    def _seen_sets(self) -> dict[str, PairSet]:
        data = self.dataset
        pairs = {"all": np.concatenate([data.train, data.val, data.test]), "train": data.train}
        return {
            name: PairSet(torch.tensor(p), data.n_users, data.n_items) for name, p in pairs.items()
        }

    def _seen(self, exclude: Exclude) -> PairSet | None:
        return None if exclude == "none" else self._seen_sets[exclude]


def train_final(
    arch: Architecture | str,
    dataset: BooksDataset,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    config: TrainConfig = FIDELITIES["converged"],
    threads: int | None = None,
    progress: bool = True,
    device: torch.device | str = "cpu",
    k: int = TOP_K,
) -> FinalModel:
    """Train ``arch`` on ``dataset`` once per seed and keep the seed best on validation.

    Args:
        arch: the architecture (or its string).
        dataset: the task.
        seeds: training seeds, default the fresh seeds 1000, 1001, 1002.
        config: the budget, default ``FIDELITIES["converged"]`` (100 epochs, patience 10).
        threads: torch threads during the trainings (``None``: ``config.threads``).
        progress: show a progress bar (tqdm, on stderr) over the seeds and their epochs.
        device: where to train (see :class:`~nasenv.train.TrainingContext`); the model's
            arrays are on the CPU.
        k: cut-off of the Recall@K and NDCG@K that choose the epoch and the seed (default 20).

    Raises:
        ValueError: no seeds, or a seed twice.
        RuntimeError: every training diverged (the reasons are in the message).
    """
    arch = Architecture.from_string(arch) if isinstance(arch, str) else arch
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    if threads is not None:
        config = dataclasses.replace(config, threads=threads)
    dataset = with_encoder(dataset, arch.encoder)  # the model keeps the features it was trained on
    context = TrainingContext(dataset, k=k, device=device)
    results: list[TrainResult] = []
    best: tuple[TrainResult, _BestEpoch] | None = None
    with tqdm(total=len(seeds), desc="final model", unit="seed", disable=not progress) as bar:
        for seed in seeds:
            kept = _BestEpoch()

            def report(epoch: int, recall: float, seed: int = seed) -> None:
                bar.set_postfix(seed=seed, epoch=epoch, val_recall=f"{recall:.4f}")

            result = train_architecture(arch, context, seed, config, report, kept)
            results.append(result)
            better = best is None or result.val_recall_best > best[0].val_recall_best
            if result.ok and kept.epoch and better:  # ties: the earlier seed
                best = (result, kept)
            bar.update(1)
    if best is None:
        reasons = "; ".join(f"seed {r.seed}: {r.reason}" for r in results)
        raise RuntimeError(f"every training of {arch.to_string()} failed ({reasons})")
    chosen, kept = best
    return FinalModel(
        arch=arch,
        dataset=dataset,
        dataset_sha256=dataset.sha256,
        results=tuple(results),
        seed=chosen.seed,
        weights=kept.weights,
        user_repr=kept.user_repr,
        item_repr=kept.item_repr,
        user_ids=np.asarray(dataset.user_id),
        item_ids=np.asarray(dataset.item_isbn),
        k=k,
    )


class _BestEpoch:
    """A :class:`~nasenv.train.BestEpochHook` keeping copies of the parameters and
    representations of the latest epoch that was best on validation."""

    def __init__(self) -> None:
        self.epoch = 0
        self.weights: dict[str, np.ndarray] = {}
        self.user_repr = self.item_repr = np.zeros((0, 0), dtype=np.float32)

    def __call__(
        self, epoch: int, model: GraphRecommender, user_repr: torch.Tensor, item_repr: torch.Tensor
    ) -> None:
        self.epoch = epoch
        self.weights = {
            name: p.detach().cpu().numpy().copy() for name, p in model.named_parameters()
        }
        self.user_repr = user_repr.cpu().numpy().copy()
        self.item_repr = item_repr.cpu().numpy().copy()


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``meta`` JSON of the model file ``path``, checked to be one this version reads.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a model file (or of a later format version); the message names it.
    """
    return _read(Path(path))[1]


def load_model(path: str | Path, dataset: BooksDataset | None = None) -> FinalModel:
    """Read a model written by :meth:`FinalModel.save`, with pickle disabled.

    Args:
        path: the ``.npz`` file.
        dataset: the task it was trained on; default: the registered task of that name, loaded
            (and verified) with :func:`nasenv.data.load_dataset`.

    Raises:
        FileNotFoundError: no such file (or the task's files are missing).
        ValueError: not a model file, or it does not fit ``dataset``; the message names it.
        ChecksumError: ``dataset``'s SHA-256 is not the one recorded at training (both named).
    """
    path = Path(path)
    arrays, meta = _read(path)
    if dataset is None:
        try:
            encoder = Architecture.from_string(meta["arch"]).encoder
            dataset = load_dataset(meta["dataset"], encoder=encoder)
        except ValueError as error:  # a task not registered here (a local import elsewhere)
            raise ValueError(
                f"{path} was trained on {meta['dataset']!r}, not a task here ({error}); import "
                "that task or pass its dataset"
            ) from None
    _check_checksum(dataset, meta["dataset_sha256"], str(path), meta["dataset"])
    prefix = "weight/"
    try:
        return FinalModel(
            arch=Architecture.from_string(meta["arch"]),
            dataset=dataset,
            dataset_sha256=meta["dataset_sha256"],
            results=tuple(TrainResult.from_dict(r) for r in meta["results"]),
            seed=int(meta["seed"]),
            weights={k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)},
            user_repr=arrays["user_repr"],
            item_repr=arrays["item_repr"],
            user_ids=arrays["user_id"],
            item_ids=arrays["item_id"],
            k=int(meta.get("k", TOP_K)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a valid {FORMAT} file: {error}") from None


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"no model file {path}")
    not_model = f"{path} is not a {FORMAT} file (as written by FinalModel.save or recnas train)"
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{not_model}: not an .npz archive")
    try:
        arrays = read_npz(path)  # refuses pickled (object) arrays
        meta = json.loads(str(arrays["meta"][()]))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{not_model}: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{not_model}: its metadata names no {FORMAT!r} format")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {version!r}; this version of recnas-books reads up to "
            f"{FORMAT_VERSION}: upgrade the package"
        )
    missing = {"arch", "dataset", "dataset_sha256", "seed", "results"} - set(meta)
    if missing:
        raise ValueError(f"{not_model}: its metadata lacks {sorted(missing)}")
    return arrays, meta


def _check_checksum(dataset: BooksDataset, recorded: str, what: str, trained_on: str) -> None:
    """Refuse ``dataset`` unless its SHA-256 is ``recorded`` (that of ``trained_on``)."""
    if dataset.sha256 != recorded:
        raise ChecksumError(
            f"{what} was trained on {trained_on} with SHA-256 {recorded}, but the dataset "
            f"{dataset.name} has SHA-256 {dataset.sha256}: use the dataset it was trained on, "
            "or retrain on this one (recnas train)"
        )
