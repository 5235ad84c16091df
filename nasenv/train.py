"""Train one architecture on one dataset and measure it.

Every epoch: one pass over the training interactions in shuffled mini-batches, one uniformly
sampled unseen negative item per positive, full-graph propagation per step, then full-ranking
Recall@K / NDCG@K on validation (training items hidden). Training stops after ``patience``
epochs without a better validation Recall@K or at ``max_epochs``. Test metrics are computed
separately, with training and validation items hidden, from the representations of the epoch
that was best on validation so far, and never influence training or stopping.

A run whose loss or scores become NaN/inf ends as a failed :class:`TrainResult` with its reason.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from nasenv.data import BooksDataset
from nasenv.metrics import FullRankingEvaluator
from nasenv.models import Graph, GraphRecommender, build_graph, count_parameters
from nasenv.space import Architecture


@dataclass(frozen=True)
class TrainConfig:
    """The training budget (fidelity) and protocol.

    Args:
        max_epochs: hard limit on epochs.
        patience: stop after this many epochs without a better validation Recall@K.
        batch_size: positive interactions per step.
        threads: ``torch.set_num_threads`` during the run (``None``: leave as is).
    """

    max_epochs: int = 40
    patience: int = 5
    batch_size: int = 16384
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_epochs", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


FAILED_SCORE = 0.0
"""Validation (and reward) score of a training that diverged."""

FIDELITIES: dict[str, TrainConfig] = {
    "low": TrainConfig(max_epochs=5, patience=2),
    "tabulation": TrainConfig(max_epochs=30, patience=5),
    "converged": TrainConfig(max_epochs=100, patience=10),
}
"""Named training budgets. ``tabulation`` is the benchmark table's (chosen and measured in
``benchmarks/eval_speed.py``); ``converged`` is the reference it is checked against."""


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one training run. Curves have one entry per completed epoch.

    ``test_recall_at_best[e]`` is the test Recall@K of the best validation epoch among the first
    ``e + 1`` epochs, so that any shorter budget's test metric can be read off without retraining.
    """

    arch: str
    dataset: str
    seed: int
    config: TrainConfig
    status: Literal["ok", "failed"]
    reason: str
    val_recall: tuple[float, ...]
    val_ndcg: tuple[float, ...]
    test_recall_at_best: tuple[float, ...]
    test_ndcg_at_best: tuple[float, ...]
    epoch_seconds: tuple[float, ...]  # cumulative wall seconds (train + validate) per epoch
    n_params: int
    inference_ms: float
    train_seconds: float = field(default=0.0)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def best_epoch(self) -> int:
        """1-based epoch with the highest validation Recall@K (0 if none finished)."""
        if not self.val_recall:
            return 0
        return max(range(len(self.val_recall)), key=self.val_recall.__getitem__) + 1

    @property
    def val_recall_best(self) -> float:
        return self.val_recall[self.best_epoch - 1] if self.val_recall else float("nan")

    @property
    def val_ndcg_best(self) -> float:
        return self.val_ndcg[self.best_epoch - 1] if self.val_ndcg else float("nan")

    @property
    def test_recall(self) -> float:
        return self.test_recall_at_best[-1] if self.test_recall_at_best else float("nan")

    @property
    def test_ndcg(self) -> float:
        return self.test_ndcg_at_best[-1] if self.test_ndcg_at_best else float("nan")

    def at_fidelity(self, max_epochs: int, patience: int) -> TrainResult:
        """This run as if it had been trained with a smaller ``max_epochs`` and ``patience``.

        Exact, because training never depends on the stopping rule: the shorter run is a prefix
        of this one, ending where its own early-stopping rule fires.
        """
        if max_epochs > self.config.max_epochs or patience > self.config.patience:
            raise ValueError(
                f"fidelity (max_epochs={max_epochs}, patience={patience}) exceeds the run's "
                f"(max_epochs={self.config.max_epochs}, patience={self.config.patience})"
            )
        epochs = stopping_epoch(self.val_recall[:max_epochs], patience)
        return dataclasses.replace(
            self,
            config=dataclasses.replace(self.config, max_epochs=max_epochs, patience=patience),
            val_recall=self.val_recall[:epochs],
            val_ndcg=self.val_ndcg[:epochs],
            test_recall_at_best=self.test_recall_at_best[:epochs],
            test_ndcg_at_best=self.test_ndcg_at_best[:epochs],
            epoch_seconds=self.epoch_seconds[:epochs],
            train_seconds=self.train_seconds * epochs / max(1, len(self.val_recall)),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (inverse: :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        data = dict(data)
        data["config"] = TrainConfig(**data["config"])
        for key in (
            "val_recall",
            "val_ndcg",
            "test_recall_at_best",
            "test_ndcg_at_best",
            "epoch_seconds",
        ):
            data[key] = tuple(data[key])
        return cls(**data)


def stopping_epoch(curve: tuple[float, ...], patience: int) -> int:
    """Number of epochs early stopping with ``patience`` runs on a validation ``curve``."""
    best, since_best = -math.inf, 0
    for epoch, value in enumerate(curve, start=1):
        if value > best:
            best, since_best = value, 0
        else:
            since_best += 1
        if since_best >= patience:
            return epoch
    return len(curve)


class _GatherRows(torch.autograd.Function):
    """``x[index]`` whose backward is one ``index_add_`` (PyTorch's indexing backward, an
    accumulating ``index_put_``, took 70% of a training step on CPU)."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.n_rows = x.shape[0]
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (index,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.n_rows, grad.shape[1])
        return out.index_add_(0, index, grad.contiguous()), None


def gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """Rows ``index`` of the 2-d ``x`` with a fast backward."""
    return _GatherRows.apply(x, index)


class NegativeSampler:
    """Uniform negative items, resampled (up to 5 times) where they hit a training positive.

    Args:
        seen: ``(n_users, n_items)`` boolean matrix of training positives.
    """

    def __init__(self, seen: Tensor) -> None:
        self.n_items = seen.shape[1]
        self.flat_seen = seen.reshape(-1)

    def __call__(self, users: Tensor, generator: torch.Generator) -> Tensor:
        items = torch.randint(self.n_items, (len(users),), generator=generator)
        offsets = users * self.n_items
        for _ in range(5):
            clash = self.flat_seen[offsets + items]
            if not clash.any():
                break
            items[clash] = torch.randint(self.n_items, (int(clash.sum()),), generator=generator)
        return items


def pair_loss(kind: str, pos: Tensor, neg: Tensor) -> Tensor:
    """BPR (``-log sigmoid(pos - neg)``) or binary cross-entropy on positive and negative logits."""
    if kind == "bpr":
        return -F.logsigmoid(pos - neg).mean()
    if kind == "bce":
        return F.softplus(-pos).mean() + F.softplus(neg).mean()
    raise ValueError(f"unknown loss {kind!r}; known: bpr, bce")


class TrainingContext:
    """Everything about a dataset that every training run shares: tensors, graph, evaluators."""

    def __init__(self, dataset: BooksDataset, k: int = 20) -> None:
        self.dataset = dataset
        self.train = torch.from_numpy(dataset.train)
        val, test = torch.from_numpy(dataset.val), torch.from_numpy(dataset.test)
        self.graph: Graph = build_graph(self.train, dataset.n_users, dataset.n_items)
        self.item_text = torch.from_numpy(dataset.item_text)
        n_u, n_i = dataset.n_users, dataset.n_items
        self.k = k
        self.val_eval = FullRankingEvaluator(n_u, n_i, self.train, val, k)
        self.sampler = NegativeSampler(self.val_eval.seen)
        self.test_eval = FullRankingEvaluator(n_u, n_i, torch.cat([self.train, val]), test, k)


def train_architecture(
    arch: Architecture,
    context: TrainingContext,
    seed: int = 0,
    config: TrainConfig | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``arch`` on ``context.dataset`` with ``seed``; deterministic on CPU for a seed.

    Args:
        arch: the design to train.
        context: the dataset's shared tensors (:class:`TrainingContext`).
        seed: seeds initialisation, batch order and negative sampling.
        config: budget and protocol; default :class:`TrainConfig()`.
        on_epoch: called after every epoch with ``(epoch, validation Recall@K)``.
    """
    config = config or TrainConfig()
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _train(arch, context, seed, config, on_epoch)
    finally:
        torch.set_num_threads(previous_threads)


def _train(
    arch: Architecture,
    ctx: TrainingContext,
    seed: int,
    config: TrainConfig,
    on_epoch: Callable[[int, float], None] | None,
) -> TrainResult:
    model = GraphRecommender(arch, ctx.graph, ctx.item_text)
    optimizer = torch.optim.Adam(model.parameters(), lr=arch.lr)
    generator = torch.Generator().manual_seed(seed)
    n_users = ctx.graph.n_users
    curves: dict[str, list[float]] = {k: [] for k in ("vr", "vn", "tr", "tn", "sec")}
    best, since_best, training, reason = -math.inf, 0, 0.0, ""
    run_start = time.perf_counter()

    for epoch in range(1, config.max_epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(ctx.train), generator=generator)
        for batch in order.split(config.batch_size):
            users, items = ctx.train[batch, 0], ctx.train[batch, 1]
            negatives = ctx.sampler(users, generator)
            nodes = torch.cat([users, n_users + items, n_users + negatives])
            final, x0 = model.node_representations()
            u, i, j = gather_rows(final, nodes).chunk(3)
            loss = pair_loss(arch.loss, (u * i).sum(1), (u * j).sum(1))
            if arch.reg:
                penalty = gather_rows(x0, nodes).square().sum() / (2 * len(batch))
                loss = loss + arch.reg * penalty
            if not torch.isfinite(loss):
                reason = f"non-finite loss {float(loss)} in epoch {epoch}"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        training += time.perf_counter() - start
        if reason:
            break
        model.eval()
        with torch.no_grad():
            user_repr, item_repr = model()
        if not (torch.isfinite(user_repr).all() and torch.isfinite(item_repr).all()):
            reason = f"non-finite embeddings after epoch {epoch}"
            break
        val = ctx.val_eval(user_repr, item_repr)
        curves["vr"].append(val.recall)
        curves["vn"].append(val.ndcg)
        curves["sec"].append(time.perf_counter() - run_start)
        if val.recall > best:
            best, since_best = val.recall, 0
            test = ctx.test_eval(user_repr, item_repr)
        else:
            since_best += 1
        curves["tr"].append(test.recall)
        curves["tn"].append(test.ndcg)
        if on_epoch is not None:
            on_epoch(epoch, val.recall)
        if since_best >= config.patience:
            break

    return TrainResult(
        arch=arch.to_string(),
        dataset=ctx.dataset.name,
        seed=seed,
        config=config,
        status="failed" if reason else "ok",
        reason=reason,
        val_recall=tuple(curves["vr"]),
        val_ndcg=tuple(curves["vn"]),
        test_recall_at_best=tuple(curves["tr"]),
        test_ndcg_at_best=tuple(curves["tn"]),
        epoch_seconds=tuple(curves["sec"]),
        n_params=count_parameters(model),
        inference_ms=_inference_ms(model, ctx) if not reason else float("nan"),
        train_seconds=training,
    )


def _inference_ms(model: GraphRecommender, ctx: TrainingContext, repeats: int = 3) -> float:
    """Median milliseconds to propagate the graph and rank the top-K unseen items of every user
    (the validation evaluator's ranking pass)."""
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            ctx.val_eval(*model())
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
