"""Full-ranking top-K metrics: Recall@K and NDCG@K over every item a user has not seen.

For a user with ground-truth set ``T`` and top-K list ``r_1..r_K`` (seen items excluded):

* ``Recall@K = |{r_i} ∩ T| / |T|`` (the convention of LightGCN and PyG's ``LinkPredRecall``);
* ``NDCG@K = DCG / IDCG`` with ``DCG = sum_{r_i in T} 1 / log2(i + 1)`` and ``IDCG`` the DCG of
  ``min(|T|, K)`` hits at the top.

Both are averaged over users with a non-empty ``T``. Every tensor these functions create lives on
the device of their inputs (CPU or GPU alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nasenv.results import TOP_K


def ranking_metrics(
    top_k: Tensor, truth: Tensor, n_true: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per-user Recall@K and NDCG@K.

    Args:
        top_k: ``(users, K)`` item indices, best first.
        truth: ``(users, items)`` boolean ground truth, on the device of ``top_k``.
        n_true: ``truth.sum(1)`` if already known (same device).

    Returns:
        ``(recall, ndcg)``, each of shape ``(users,)`` on the device of ``top_k``; ``nan`` for
        users without ground truth.
    """
    k = top_k.shape[1]
    hits = truth.gather(1, top_k).float()
    n_true = (truth.sum(1) if n_true is None else n_true).float()
    positions = torch.arange(2, k + 2, dtype=torch.float32, device=top_k.device)
    discount = 1.0 / torch.log2(positions)
    dcg = (hits * discount).sum(1)
    ideal = torch.cumsum(discount, 0)[(n_true.clamp(1, k) - 1).long()]
    recall = hits.sum(1) / n_true
    ndcg = dcg / ideal
    empty = n_true == 0
    return recall.masked_fill(empty, float("nan")), ndcg.masked_fill(empty, float("nan"))


@dataclass(frozen=True)
class RankingScore:
    """Mean Recall@K and NDCG@K over the evaluated users."""

    recall: float
    ndcg: float


DENSE_CELLS = 1 << 27
"""Up to this many ``users x items`` cells (128 MiB of booleans) a :class:`PairSet` also keeps a
dense matrix, whose lookups are about ten times faster than a search in the sorted keys (every
shipped task is below it; Books-5core, at 549M cells, is above). Both answer identically."""

SCORE_CELLS = 1 << 26
"""Most ``users x items`` scores :class:`FullRankingEvaluator` holds at once (256 MiB of floats):
its default chunk is ``min(4096, SCORE_CELLS // n_items)`` users."""


class PairSet:
    """A set of ``(user, item)`` pairs in memory linear in its size: sorted flat keys
    ``user * n_items + item`` and each user's offset into them (a CSR layout), plus, for a
    small task only (:data:`DENSE_CELLS`), a dense boolean matrix for fast lookups.

    Args:
        pairs: ``(n, 2)`` user-item pairs (duplicates are kept once).
        n_users: number of users.
        n_items: number of items.
        device: where the keys live (default: that of ``pairs``).
    """

    def __init__(
        self, pairs: Tensor, n_users: int, n_items: int, device: torch.device | str | None = None
    ) -> None:
        device = pairs.device if device is None else torch.device(device)
        pairs = pairs.to(device).long()
        self.n_users, self.n_items = n_users, n_items
        self.keys = torch.unique(pairs[:, 0] * n_items + pairs[:, 1])  # sorted
        self.counts = torch.bincount(self.keys // n_items, minlength=n_users)
        self.offsets = torch.cumsum(self.counts, 0) - self.counts
        self.dense: Tensor | None = None
        if n_users * n_items <= DENSE_CELLS:
            self.dense = torch.zeros(n_users * n_items, dtype=torch.bool, device=device)
            self.dense[self.keys] = True
            self.dense = self.dense.view(n_users, n_items)

    @property
    def device(self) -> torch.device:
        return self.keys.device

    def __len__(self) -> int:
        return len(self.keys)

    def contains(self, users: Tensor, items: Tensor) -> Tensor:
        """Boolean tensor: whether each ``(users[j], items[j])`` is in the set."""
        if self.dense is not None:
            return self.dense.to(users.device)[users, items]
        query = users.long() * self.n_items + items.long()
        if not len(self.keys):
            return torch.zeros_like(query, dtype=torch.bool)
        keys = self.keys.to(query.device)
        position = torch.searchsorted(keys, query).clamp_(max=len(keys) - 1)
        return keys[position] == query

    def rows(self, users: Tensor) -> Tensor:
        """``(len(users), n_items)`` boolean rows of ``users``, built for this chunk only."""
        users = users.to(self.device).long()
        if self.dense is not None:
            return self.dense[users]
        counts, starts = self.counts[users], self.offsets[users]
        row = torch.repeat_interleave(torch.arange(len(users), device=self.device), counts)
        first = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
        index = first + torch.arange(len(row), device=self.device)
        matrix = torch.zeros(len(users), self.n_items, dtype=torch.bool, device=self.device)
        matrix[row, self.keys[index] % self.n_items] = True
        return matrix


class FullRankingEvaluator:
    """Scores every item for every user, hides seen items, and averages top-K metrics.

    Args:
        n_users: number of users.
        n_items: number of items.
        seen: ``(n, 2)`` user-item pairs excluded from ranking (e.g. train for validation).
        truth: ``(m, 2)`` user-item pairs to retrieve.
        k: cut-off.
        chunk: users scored at once (bounds memory at ``chunk * n_items`` floats); default
            ``min(4096, SCORE_CELLS // n_items)``.
        device: where the pairs live; best that of the representations. The ranking runs where
            the representations given to :meth:`__call__` are (a chunk's masks are built from
            the pairs and copied there if they live elsewhere).

    Seen and ground-truth pairs are kept as :class:`PairSet`: memory is linear in the
    interactions, and only one chunk of users is ever expanded to rows over every item.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        seen: Tensor,
        truth: Tensor,
        k: int = TOP_K,
        chunk: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if k < 1 or k > n_items:
            raise ValueError(f"k must be in [1, {n_items}], got {k}")
        self.n_items, self.k = n_items, k
        self.chunk = chunk or max(1, min(4096, SCORE_CELLS // n_items))
        self.seen = PairSet(seen, n_users, n_items, device)
        self.truth = PairSet(truth, n_users, n_items, device)
        self.n_true = self.truth.counts
        self.users = torch.nonzero(self.n_true).flatten()

    @torch.no_grad()
    def __call__(self, user_repr: Tensor, item_repr: Tensor) -> RankingScore:
        """Mean metrics of ``user_repr @ item_repr.T`` (both on one device)."""
        device = user_repr.device
        recall_sum = ndcg_sum = 0.0
        for users in self.users.split(self.chunk):
            scores = user_repr[users.to(device)] @ item_repr.T
            scores.masked_fill_(self.seen.rows(users).to(device), float("-inf"))
            top_k = scores.topk(self.k, dim=1).indices
            truth, n_true = self.truth.rows(users).to(device), self.n_true[users].to(device)
            recall, ndcg = ranking_metrics(top_k, truth, n_true)
            recall_sum += float(recall.sum())
            ndcg_sum += float(ndcg.sum())
        n = len(self.users)
        return RankingScore(recall_sum / n, ndcg_sum / n)
