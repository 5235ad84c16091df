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


class FullRankingEvaluator:
    """Scores every item for every user, hides seen items, and averages top-K metrics.

    Args:
        n_users: number of users.
        n_items: number of items.
        seen: ``(n, 2)`` user-item pairs excluded from ranking (e.g. train for validation).
        truth: ``(m, 2)`` user-item pairs to retrieve.
        k: cut-off.
        chunk: users scored at once (bounds memory at ``chunk * n_items`` floats).
        device: where the masks live; best that of the representations. The ranking runs where
            the representations given to :meth:`__call__` are (a chunk's masks are copied there
            if they live elsewhere).
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        seen: Tensor,
        truth: Tensor,
        k: int = TOP_K,
        chunk: int = 4096,
        device: torch.device | str = "cpu",
    ) -> None:
        if k < 1 or k > n_items:
            raise ValueError(f"k must be in [1, {n_items}], got {k}")
        self.n_items, self.k, self.chunk = n_items, k, chunk
        self.seen = self._dense(seen, n_users, n_items, device)
        self.truth = self._dense(truth, n_users, n_items, device)
        self.n_true = self.truth.sum(1)
        self.users = torch.nonzero(self.n_true).flatten()

    @staticmethod
    def _dense(
        pairs: Tensor, n_users: int, n_items: int, device: torch.device | str | None = None
    ) -> Tensor:
        """``(n_users, n_items)`` boolean matrix, True at ``pairs``, on ``device`` (default: that
        of ``pairs``)."""
        device = pairs.device if device is None else torch.device(device)
        pairs = pairs.to(device)
        matrix = torch.zeros(n_users, n_items, dtype=torch.bool, device=device)
        matrix[pairs[:, 0].long(), pairs[:, 1].long()] = True
        return matrix

    @torch.no_grad()
    def __call__(self, user_repr: Tensor, item_repr: Tensor) -> RankingScore:
        """Mean metrics of ``user_repr @ item_repr.T`` (both on one device)."""
        device = user_repr.device
        recall_sum = ndcg_sum = 0.0
        for users in self.users.split(self.chunk):
            scores = user_repr[users.to(device)] @ item_repr.T
            scores.masked_fill_(self.seen[users].to(device), float("-inf"))
            top_k = scores.topk(self.k, dim=1).indices
            truth, n_true = self.truth[users].to(device), self.n_true[users].to(device)
            recall, ndcg = ranking_metrics(top_k, truth, n_true)
            recall_sum += float(recall.sum())
            ndcg_sum += float(ndcg.sum())
        n = len(self.users)
        return RankingScore(recall_sum / n, ndcg_sum / n)
