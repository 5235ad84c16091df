"""Train one architecture on one dataset and measure it.

Every epoch: one pass over the training interactions in shuffled mini-batches, one uniformly
sampled unseen negative item per positive, full-graph propagation per step, then full-ranking
Recall@K / NDCG@K on validation (training items hidden). Training stops after ``patience``
epochs without a better validation Recall@K or at ``max_epochs``. Test metrics are computed
separately, with training and validation items hidden, from the representations of the epoch
that was best on validation so far, and never influence training or stopping. Their passes are
timed apart and not charged: the run's cost is its training and validation seconds
(:data:`nasenv.results.COST_VERSION`).

A run whose loss or scores become NaN/inf ends as a failed :class:`TrainResult` with its reason.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from nasenv.data import BooksDataset, with_encoder
from nasenv.metrics import FullRankingEvaluator, PairSet
from nasenv.models import Graph, GraphRecommender, build_graph, count_parameters
from nasenv.results import (
    COST_VERSION,
    PROTOCOL_VERSION,
    TOP_K,
    EarlyStopping,
    TrainConfig,
    TrainResult,
)
from nasenv.space import Architecture

__all__ = [
    "BestEpochHook",
    "NegativeSampler",
    "TrainingContext",
    "gather_rows",
    "l2_penalty",
    "pair_loss",
    "train_architecture",
]


class BestEpochHook(Protocol):
    """``on_best(epoch, model, user_repr, item_repr)``: called by :func:`train_architecture` after
    every epoch that is a new best on validation (the epochs whose test metrics are measured)."""

    def __call__(
        self, epoch: int, model: GraphRecommender, user_repr: Tensor, item_repr: Tensor
    ) -> None: ...


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
        seen: the training positives (a :class:`~nasenv.metrics.PairSet`).
    """

    def __init__(self, seen: PairSet) -> None:
        self.n_items = seen.n_items
        self.seen = seen

    def __call__(self, users: Tensor, generator: torch.Generator) -> Tensor:
        device = users.device
        items = torch.randint(self.n_items, (len(users),), generator=generator, device=device)
        for _ in range(5):
            clash = self.seen.contains(users, items)
            if not clash.any():
                break
            n = int(clash.sum())
            items[clash] = torch.randint(self.n_items, (n,), generator=generator, device=device)
        return items


def l2_penalty(x0: Tensor, nodes: Tensor, batch_size: int) -> Tensor:
    """The batch's L2 penalty: half the squared norms of the input rows of ``nodes`` (a row as
    often as it occurs), per positive pair.

    Computed as each row's count in ``nodes`` times its squared norm, over the ``n_nodes`` rows
    of ``x0`` rather than the ``3 x batch_size`` gathered ones (seven times fewer on
    Books-20core, and no gather backward): the same value and gradient, summed in another
    order (:data:`nasenv.results.PROTOCOL_VERSION` 3).
    """
    counts = torch.bincount(nodes, minlength=x0.shape[0]).to(x0.dtype)
    return (counts * x0.square().sum(1)).sum() / (2 * batch_size)


def pair_loss(kind: str, pos: Tensor, neg: Tensor) -> Tensor:
    """BPR (``-log sigmoid(pos - neg)``) or binary cross-entropy on positive and negative logits."""
    if kind == "bpr":
        return -F.logsigmoid(pos - neg).mean()
    if kind == "bce":
        return F.softplus(-pos).mean() + F.softplus(neg).mean()
    raise ValueError(f"unknown loss {kind!r}; known: bpr, bce")


class TrainingContext:
    """Everything about a dataset that every training run shares: tensors, graph, evaluators.

    Args:
        dataset: the task.
        k: cut-off of Recall@K and NDCG@K.
        device: where training runs (``"cpu"``, ``"cuda"``, ...). Initial weights are drawn on
            the CPU for every device; batch order and negatives come from a generator on
            ``device``, so results on a GPU differ from those on the CPU (and are not bit-stable).
    """

    def __init__(
        self, dataset: BooksDataset, k: int = TOP_K, device: torch.device | str = "cpu"
    ) -> None:
        self.dataset = dataset
        self.device = torch.device(device)
        # copies: the dataset's arrays are read-only (torch.from_numpy would warn about them)
        train = torch.tensor(dataset.train)
        val, test = torch.tensor(dataset.val), torch.tensor(dataset.test)
        self.train = train.to(self.device)
        graph = build_graph(train, dataset.n_users, dataset.n_items)
        self.graph: Graph = graph.to(self.device)
        self.item_text = torch.tensor(dataset.item_text, device=self.device)
        self._features: dict[str, Tensor] = {"frozen": self.item_text}
        n_u, n_i, d = dataset.n_users, dataset.n_items, self.device
        self.k = k
        self.val_eval = FullRankingEvaluator(n_u, n_i, train, val, k, device=d)
        self.sampler = NegativeSampler(self.val_eval.seen)
        self.test_eval = FullRankingEvaluator(n_u, n_i, torch.cat([train, val]), test, k, device=d)

    def item_features(self, encoder: str) -> Tensor:
        """The item text features of an architecture's ``encoder`` decision on this device:
        :attr:`item_text` for ``frozen``, an adapted encoder's loaded at first use
        (:func:`nasenv.data.with_encoder`) and kept."""
        if encoder not in self._features:
            dataset = with_encoder(self.dataset, encoder)
            self._features[encoder] = torch.tensor(dataset.item_text, device=self.device)
        return self._features[encoder]


def train_architecture(
    arch: Architecture,
    context: TrainingContext,
    seed: int = 0,
    config: TrainConfig | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    on_best: BestEpochHook | None = None,
) -> TrainResult:
    """Train ``arch`` on ``context.dataset`` with ``seed``; deterministic on CPU for a seed.

    Args:
        arch: the design to train.
        context: the dataset's shared tensors (:class:`TrainingContext`).
        seed: seeds initialisation, batch order and negative sampling.
        config: budget and protocol; default :class:`TrainConfig()`.
        on_epoch: called after every epoch with ``(epoch, validation Recall@K)``.
        on_best: called after every epoch that is a new best on validation with ``(epoch,
            model, user_repr, item_repr)`` (:class:`BestEpochHook`), so that a caller can keep
            the weights of the best epoch (:func:`nasenv.export.train_final` does). The model
            and its parameters are live: copy what you keep (``p.detach().clone()``); the
            representations (evaluation mode, no gradient) are this epoch's own. The hook must
            not draw random numbers: training goes on with the same generators, so a run with a
            hook returns the same :class:`TrainResult` as one without. Its time is not charged.

    The caller's process state is left as it was: torch's global random generators (the run
    seeds and uses forks of the CPU one and, on a CUDA device, of that device's) and, unless
    ``config.threads`` asks for a count during the run, torch's number of threads (restored
    afterwards).
    """
    config = config or TrainConfig()
    cuda = [context.device] if context.device.type == "cuda" else []
    with _num_threads(config.threads), torch.random.fork_rng(devices=cuda, device_type="cuda"):
        # not torch.manual_seed: it also seeds every other device's generator, unforked
        torch.default_generator.manual_seed(seed)
        for device in cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        return _train(arch, context, seed, config, on_epoch, on_best)


@contextmanager
def _num_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside, the previous count restored; ``None``: the
    count is not touched."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train(
    arch: Architecture,
    ctx: TrainingContext,
    seed: int,
    config: TrainConfig,
    on_epoch: Callable[[int, float], None] | None,
    on_best: BestEpochHook | None = None,
) -> TrainResult:
    model = GraphRecommender(arch, ctx.graph, ctx.item_features(arch.encoder)).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=arch.lr)
    generator = torch.Generator(device=ctx.device).manual_seed(seed)
    n_users = ctx.graph.n_users
    curves: dict[str, list[float]] = {k: [] for k in ("vr", "vn", "tr", "tn", "sec", "test_sec")}
    stopping, reason = EarlyStopping(config.patience), ""
    training = testing = 0.0  # seconds of the training steps; of the test passes (not charged)
    aside = 0.0  # seconds of the on_best hook (not charged either)
    run_start = time.perf_counter()

    for epoch in range(1, config.max_epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(ctx.train), generator=generator, device=ctx.device)
        for batch in order.split(config.batch_size):
            users, items = ctx.train[batch, 0], ctx.train[batch, 1]
            negatives = ctx.sampler(users, generator)
            nodes = torch.cat([users, n_users + items, n_users + negatives])
            final, x0 = model.node_representations()
            u, i, j = gather_rows(final, nodes).chunk(3)
            loss = pair_loss(arch.loss, (u * i).sum(1), (u * j).sum(1))
            if arch.reg:
                loss = loss + arch.reg * l2_penalty(x0, nodes, len(batch))
            if not torch.isfinite(loss):
                reason = f"non-finite loss {loss.item()} in epoch {epoch}"
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
        curves["sec"].append(time.perf_counter() - run_start - testing - aside)  # COST_VERSION 2
        if stopping.update(val.recall):
            test_start = time.perf_counter()
            test = ctx.test_eval(user_repr, item_repr)
            testing += time.perf_counter() - test_start
            if on_best is not None:
                hook_start = time.perf_counter()
                on_best(epoch, model, user_repr, item_repr)
                aside += time.perf_counter() - hook_start
        curves["test_sec"].append(testing)
        curves["tr"].append(test.recall)
        curves["tn"].append(test.ndcg)
        if on_epoch is not None:
            on_epoch(epoch, val.recall)
        if stopping.stop:
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
        cost_version=COST_VERSION,
        epoch_test_seconds=tuple(curves["test_sec"]),
        device=device_label(ctx.device),
        protocol=PROTOCOL_VERSION,
    )


def device_label(device: torch.device) -> str:
    """``"cpu"``, or for a GPU its type and name (``"cuda (NVIDIA H200)"``), as results record
    it (:attr:`nasenv.results.TrainResult.device`)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def _inference_ms(model: GraphRecommender, ctx: TrainingContext, repeats: int = 3) -> float:
    """Median milliseconds to propagate the graph and rank the top-K unseen items of every user
    (the validation evaluator's ranking pass)."""
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            ctx.val_eval(*model())  # its float() results wait for the device to finish
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
