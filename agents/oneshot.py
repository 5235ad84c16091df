"""One-shot searchers: weight-sharing search on the real data over a
:class:`~nasenv.supernet.Supernet`, as NAS-Bench-201 (Dong & Yang 2020) scores them on its
table: each trains shared weights on the training interactions, selects on validation only and
derives one architecture, which the table then scores.

* :class:`DARTS`: first-order DARTS (Liu et al. 2019, "DARTS: Differentiable Architecture
  Search");
* :class:`GDAS`: GDAS (Dong & Yang 2019, "Searching for a Robust Neural Architecture in Four GPU
  Hours"), hard Gumbel-softmax paths;
* :class:`SPOS`: uniform single-path training (Guo et al. 2020, "Single Path One-Shot Neural
  Architecture Search with Uniform Sampling"), i.e. random search with weight sharing (RSPS, Li &
  Talwalkar 2019, "Random Search and Reproducibility for Neural Architecture Search");
* :class:`ENAS`: the controller of :mod:`agents.reinforce` (Pham et al. 2018, "Efficient Neural
  Architecture Search via Parameter Sharing").

Adapted to this setting, for all: the shared weights are trained as
:func:`~nasenv.train.train_architecture` trains one architecture (Adam at the space's learning
rate, batches of 16,384, one uniform negative per positive, the L2 penalty), not with the papers'
SGD on CIFAR-10; alpha and controller steps see validation interactions (never propagated: the
graph is the training graph) and nothing sees the test split. A search is deterministic for a
seed on the CPU and leaves torch's global random state alone. Searchers are no
:class:`~agents.base.Agent`: they search a dataset, not an env (``searcher.search(dataset)``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from agents.reinforce import Controller
from nasenv.data import BooksDataset
from nasenv.env import N_ACTIONS
from nasenv.metrics import FullRankingEvaluator, PairSet
from nasenv.space import CORE, Architecture, Choice, SearchSpace
from nasenv.supernet import PathWeights, Supernet, require_in_space
from nasenv.train import NegativeSampler, TrainingContext

__all__ = ["DARTS", "ENAS", "GDAS", "SEARCHERS", "SPOS", "EpochRecord", "OneShotResult"]

Batch = tuple[Tensor, Tensor, Tensor]  # users, positive items, negative items


@dataclass(frozen=True)
class EpochRecord:
    """The state of a search after one epoch of shared-weight training.

    Args:
        epoch: from 1.
        seconds: wall seconds since the search started.
        train_loss: mean training batch loss of the epoch.
        probabilities: the architecture weights: per decision group, the softmax of its alphas
            (DARTS, GDAS), or per slot the controller's probabilities along its greedy
            architecture (ENAS); empty for SPOS.
        derived: the architecture the search would return now (``""`` for SPOS).
        val_recall: its inherited-weight validation Recall@K (NaN for SPOS).
    """

    epoch: int
    seconds: float
    train_loss: float
    probabilities: dict[str, tuple[float, ...]]
    derived: str
    val_recall: float


@dataclass(frozen=True)
class OneShotResult:
    """What a one-shot search returns. ``arch`` is always in ``space``: construction refuses,
    naming it, an architecture outside (never projecting it in)."""

    searcher: str
    dataset: str
    seed: int
    arch: Architecture
    wall_seconds: float
    history: tuple[EpochRecord, ...]
    hyperparameters: dict[str, Any]
    space: SearchSpace = field(default=CORE, repr=False, compare=False)
    supernet: Supernet | None = field(default=None, repr=False, compare=False)
    """The trained supernet (inherited-weight scores of any architecture of the space)."""
    inherited_scores: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Inherited-weight validation Recall@K of every architecture of ``space`` in its order,
    where the search computed them all (SPOS without ``n_candidates``)."""

    def __post_init__(self) -> None:
        require_in_space(self.arch, self.space)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the supernet and scores left out)."""
        return {
            "searcher": self.searcher,
            "dataset": self.dataset,
            "seed": self.seed,
            "arch": self.arch.to_string(),
            "wall_seconds": self.wall_seconds,
            "hyperparameters": {k: str(v) for k, v in self.hyperparameters.items()},
            "history": [dataclasses.asdict(r) for r in self.history],
        }


@contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """torch on ``threads`` intra-op threads inside (``None``: untouched), restored after."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Run:
    """One search's supernet, batches, weight optimizer, generators and history."""

    def __init__(
        self,
        context: TrainingContext,
        space: SearchSpace,
        seed: int,
        batch_size: int,
        on_epoch: Callable[[EpochRecord], None] | None,
    ) -> None:
        self.start = time.perf_counter()
        self.context, self.on_epoch = context, on_epoch
        self.net = Supernet(context, space, seed)
        self.sampling = torch.Generator().manual_seed(seed)  # paths, Gumbel noise, controller
        self.batches = torch.Generator(device=context.device).manual_seed(seed)
        self.batch_size = batch_size
        self.val = torch.tensor(context.dataset.val, device=context.device)  # (a copy)
        n_users, n_items = context.graph.n_users, context.graph.n_items
        seen = PairSet(torch.cat([context.train, self.val]), n_users, n_items)
        self.val_sampler = NegativeSampler(seen)  # no training nor validation positive
        self.val_order: list[Tensor] = []
        self.weights = self.net.shared_parameters()
        self.optimizer = torch.optim.Adam(self.weights, lr=self.net.lr)
        self.history: list[EpochRecord] = []
        self.losses: list[float] = []

    def train_epoch(self) -> Iterator[Batch]:
        """One shuffled pass over the training interactions, with their negatives."""
        train = self.context.train
        order = torch.randperm(len(train), generator=self.batches, device=train.device)
        for batch in order.split(self.batch_size):
            users = train[batch, 0]
            yield users, train[batch, 1], self.context.sampler(users, self.batches)

    def val_batch(self) -> Batch:
        """The next batch of validation interactions (reshuffled after each pass)."""
        if not self.val_order:
            order = torch.randperm(len(self.val), generator=self.batches, device=self.val.device)
            self.val_order = list(order.split(self.batch_size))
        batch = self.val_order.pop(0)
        users = self.val[batch, 0]
        return users, self.val[batch, 1], self.val_sampler(users, self.batches)

    def evaluator(self, users: Tensor) -> FullRankingEvaluator:
        """Full ranking on the validation interactions of ``users`` only."""
        ctx = self.context
        truth = self.val[torch.isin(self.val[:, 0], users)]
        n_users, n_items = ctx.graph.n_users, ctx.graph.n_items
        return FullRankingEvaluator(n_users, n_items, ctx.train, truth, ctx.k, device=ctx.device)

    @staticmethod
    def step(optimizer: torch.optim.Optimizer, params: Sequence[Tensor], loss: Tensor) -> float:
        """One optimizer step on ``params`` only (gradients of nothing else are computed)."""
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the one-shot search diverged: batch loss {loss.item()}")
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad
        optimizer.step()
        return loss.item()

    def train_step(self, weights: PathWeights, batch: Batch) -> None:
        self.losses.append(self.step(self.optimizer, self.weights, self.net.loss(weights, *batch)))

    def record(
        self,
        epoch: int,
        derived: Architecture | None = None,
        probabilities: dict[str, tuple[float, ...]] | None = None,
    ) -> None:
        record = EpochRecord(
            epoch=epoch,
            seconds=time.perf_counter() - self.start,
            train_loss=float(np.mean(self.losses)),
            probabilities=probabilities or {},
            derived=derived.to_string() if derived else "",
            val_recall=self.net.score(derived) if derived else math.nan,
        )
        self.history.append(record)
        self.losses = []
        if self.on_epoch is not None:
            self.on_epoch(record)


@dataclass
class OneShotSearcher(ABC):
    """Base of the searchers: a dataclass of documented hyperparameters with :meth:`search`.

    Args:
        epochs: 30, passes over the training interactions: the table's budget for one
            architecture (``FIDELITIES["tabulation"].max_epochs``), here shared by all.
        batch_size: 16384, :class:`~nasenv.results.TrainConfig`'s (the table's) batch.
    """

    name: ClassVar[str]
    epochs: int = 30
    batch_size: int = 16384

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")

    def hyperparameters(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def search(
        self,
        dataset: BooksDataset | TrainingContext,
        seed: int = 0,
        *,
        space: SearchSpace = CORE,
        threads: int | None = None,
        on_epoch: Callable[[EpochRecord], None] | None = None,
    ) -> OneShotResult:
        """Search ``space`` on ``dataset`` (or an existing context, whose device and cut-off K
        are used) with ``seed``; ``threads``: torch's thread count during the search (restored
        after); ``on_epoch`` is called with every :class:`EpochRecord`."""
        with _threads(threads):
            context = dataset if isinstance(dataset, TrainingContext) else TrainingContext(dataset)
            run = _Run(context, space, seed, self.batch_size, on_epoch)
            arch, scores = self._search(run)
            wall = time.perf_counter() - run.start
        return OneShotResult(
            searcher=self.name,
            dataset=context.dataset.name,
            seed=seed,
            arch=arch,
            wall_seconds=wall,
            history=tuple(run.history),
            hyperparameters=self.hyperparameters(),
            space=space,
            supernet=run.net,
            inherited_scores=scores,
        )

    @abstractmethod
    def _search(self, run: _Run) -> tuple[Architecture, np.ndarray | None]:
        """The derived architecture and, where computed, every architecture's score."""


@dataclass
class DARTS(OneShotSearcher):
    """First-order DARTS: per training batch, one Adam step of the alphas on the loss of a
    validation batch (without the L2 penalty, a regulariser of the weights) under the softmax
    mixture, then one step of the weights on the training batch (DARTS's Algorithm 1 with
    ``xi = 0``). The loss group is the mixture of BPR and BCE: its alphas follow the losses'
    values, which differ in scale (BCE sums two terms), so they favour BPR by construction.

    Args:
        arch_learning_rate: 0.02. DARTS: 3e-4 for about 19,550 alpha steps (50 epochs of 391
            batches of 64); a search here takes 300 (30 epochs of 10 batches on Books-20core),
            so the rate is scaled to let the alphas move as far (3e-4 x 19,550 / 300).
        arch_betas: ``(0.5, 0.999)``, DARTS's Adam betas for the alphas.
        arch_weight_decay: 0.001, DARTS's weight decay of the alphas.
    """

    name: ClassVar[str] = "darts"
    arch_learning_rate: float = 0.02
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3

    def _alpha_optimizer(self, net: Supernet) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            net.arch_parameters(),
            lr=self.arch_learning_rate,
            betas=self.arch_betas,
            weight_decay=self.arch_weight_decay,
        )

    def _search(self, run: _Run) -> tuple[Architecture, np.ndarray | None]:
        net, alphas = run.net, run.net.arch_parameters()
        optimizer = self._alpha_optimizer(net)
        for epoch in range(1, self.epochs + 1):
            for batch in run.train_epoch():
                run.step(optimizer, alphas, net.loss(net.mixed(), *run.val_batch(), False))
                run.train_step(net.mixed(), batch)
            run.record(epoch, net.derive(), net.probabilities())
        return net.derive(), None


@dataclass
class GDAS(DARTS):
    """GDAS: per training batch, one weight step on the batch through one path sampled by the
    hard Gumbel-softmax of the alphas (:meth:`~nasenv.supernet.Supernet.gumbel`), then one alpha
    step on a validation batch through another sample, as GDAS's reference code alternates. The
    temperature falls linearly from ``tau_max`` in the first epoch to ``tau_min`` in the last.

    Args:
        tau_max: 10.0, GDAS.
        tau_min: 0.1, GDAS.
        arch_learning_rate: 0.02, GDAS uses DARTS's alpha optimizer; scaled as for DARTS.
        arch_betas: ``(0.5, 0.999)``, as DARTS.
        arch_weight_decay: 0.001, as DARTS.
    """

    name: ClassVar[str] = "gdas"
    tau_max: float = 10.0
    tau_min: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.tau_min <= self.tau_max:
            raise ValueError(f"need 0 < tau_min <= tau_max, got {self.tau_min}, {self.tau_max}")

    def _search(self, run: _Run) -> tuple[Architecture, np.ndarray | None]:
        net, alphas, generator = run.net, run.net.arch_parameters(), run.sampling
        optimizer = self._alpha_optimizer(net)
        for epoch in range(1, self.epochs + 1):
            share = (epoch - 1) / max(self.epochs - 1, 1)
            tau = self.tau_max - (self.tau_max - self.tau_min) * share
            for batch in run.train_epoch():
                run.train_step(net.gumbel(tau, generator)[0], batch)
                loss = net.loss(net.gumbel(tau, generator)[0], *run.val_batch(), False)
                run.step(optimizer, alphas, loss)
            run.record(epoch, net.derive(), net.probabilities())
        return net.derive(), None


@dataclass
class SPOS(OneShotSearcher):
    """SPOS / RSPS: every training batch trains one path drawn uniformly (each group on the
    path uniform over its choices, :meth:`~nasenv.supernet.Supernet.uniform_path`; so a path
    stops at depth 1 with probability 1/4); then the candidates are ranked by inherited-weight
    validation Recall@K and the best is returned. The loss changes no forward, so two candidates
    that differ in it alone tie: ties are broken uniformly at random (seeded).

    Args:
        n_candidates: ``None``, every architecture of the space (708 in the core: exhaustive,
            what SPOS's evolutionary search and RSPS's 1,000 random candidates approximate);
            an integer: that many drawn uniformly from the space, with repeats.
    """

    name: ClassVar[str] = "spos"
    n_candidates: int | None = None

    def _search(self, run: _Run) -> tuple[Architecture, np.ndarray | None]:
        net = run.net
        for epoch in range(1, self.epochs + 1):
            for batch in run.train_epoch():
                run.train_step(net.one_hot(net.uniform_path(run.sampling)), batch)
            run.record(epoch)
        space = net.space
        if self.n_candidates is None:
            candidates = list(space)
        else:
            draws = torch.randint(len(space), (self.n_candidates,), generator=run.sampling)
            candidates = [space[int(i)] for i in draws]
        scores = net.scores(candidates)
        best = np.flatnonzero(scores == scores.max())
        pick = int(best[int(torch.randint(len(best), (), generator=run.sampling))])
        return candidates[pick], scores if self.n_candidates is None else None


@dataclass
class ENAS(OneShotSearcher):
    """ENAS: each epoch, one weight step per training batch through a path sampled from the
    controller (:class:`agents.reinforce.Controller` under the space's masks), then
    ``controller_updates`` REINFORCE steps (loss and baseline of
    :class:`agents.reinforce.Reinforce`) on ``controller_batch`` samples each, rewarded with
    inherited-weight Recall@K on one validation minibatch (one of ``reward_folds`` random folds of
    the validation users). Returns the best of ``final_samples`` samples on all of validation.

    Args:
        controller_updates: 5 per epoch (150 in a search). ENAS trains its controller 2,000 steps
            per epoch; with 10 training batches an epoch here, 5 keeps the controller's rewards
            to about half of a search's time.
        controller_batch: 5, :class:`~agents.reinforce.Reinforce`'s ``batch_size`` (ENAS's code
            aggregates 10 or 20 samples).
        hidden_size: 100, ENAS.
        temperature: 5.0, ENAS.
        tanh_constant: 2.5, ENAS.
        baseline_decay: 0.95, :class:`~agents.reinforce.Reinforce` (ENAS: 0.99 over far more
            updates).
        entropy_weight: 0.0001, ENAS.
        learning_rate: 0.01, :class:`~agents.reinforce.Reinforce`'s rate for its 20 to 100
            updates (ENAS: 3.5e-4 over tens of thousands).
        reward_folds: 4, validation minibatches of a quarter of the validation users (ENAS
            rewards on one validation minibatch).
        final_samples: 10; ENAS samples "several" architectures and keeps the best on validation.
    """

    name: ClassVar[str] = "enas"
    controller_updates: int = 5
    controller_batch: int = 5
    hidden_size: int = 100
    temperature: float = 5.0
    tanh_constant: float = 2.5
    baseline_decay: float = 0.95
    entropy_weight: float = 1e-4
    learning_rate: float = 0.01
    reward_folds: int = 4
    final_samples: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("controller_batch", "reward_folds", "final_samples"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.controller_updates < 0:
            raise ValueError(f"controller_updates must be >= 0, got {self.controller_updates}")

    @staticmethod
    def _sample(
        controller: Controller, space: SearchSpace, generator: torch.Generator, greedy: bool
    ) -> tuple[list[int], np.ndarray, Architecture, dict[str, tuple[float, ...]]]:
        """One architecture from the controller: its actions, masks, architecture, and the
        probabilities of every slot with a choice to make."""
        prefix: list[Choice] = []
        actions: list[int] = []
        slots = space.slots
        masks = np.zeros((len(slots), N_ACTIONS), dtype=bool)
        probabilities: dict[str, tuple[float, ...]] = {}
        tokens, state = torch.tensor([controller.start]), None
        with torch.no_grad():
            for slot in range(len(slots)):
                masks[slot, : len(slots[slot].choices)] = space.mask(prefix)
                log_p, state = controller.step(
                    slot, tokens, torch.as_tensor(masks[slot])[None], state
                )
                p = log_p[0].exp()
                action = int(p.argmax() if greedy else torch.multinomial(p, 1, generator=generator))
                if masks[slot].sum() > 1:
                    probabilities[slots[slot].name] = tuple(p[: len(slots[slot].choices)].tolist())
                actions.append(action)
                prefix.append(slots[slot].choices[action])
                tokens = torch.tensor([controller.offsets[slot] + action])
        return actions, masks, Architecture.from_decisions(prefix, slots), probabilities

    def _search(self, run: _Run) -> tuple[Architecture, np.ndarray | None]:
        net, space, generator = run.net, run.net.space, run.sampling
        controller = Controller(
            self.hidden_size, self.temperature, self.tanh_constant, generator, space.slots
        )
        optimizer = torch.optim.Adam(controller.parameters(), lr=self.learning_rate)
        users = torch.unique(run.val[:, 0])
        folds = users[torch.randperm(len(users), generator=generator)].tensor_split(
            self.reward_folds
        )
        evaluators: dict[int, FullRankingEvaluator] = {}
        baseline: float | None = None
        for epoch in range(1, self.epochs + 1):
            for batch in run.train_epoch():
                arch = self._sample(controller, space, generator, greedy=False)[2]
                run.train_step(net.one_hot(arch), batch)
            for _ in range(self.controller_updates):
                fold = int(torch.randint(self.reward_folds, (), generator=generator))
                if fold not in evaluators:
                    evaluators[fold] = run.evaluator(folds[fold])
                drawn = [
                    self._sample(controller, space, generator, False)
                    for _ in range(self.controller_batch)
                ]
                rewards = net.scores([d[2] for d in drawn], evaluator=evaluators[fold])
                if baseline is None:
                    baseline = float(rewards.mean())
                taken = torch.tensor([d[0] for d in drawn])
                valid = torch.as_tensor(np.stack([d[1] for d in drawn]))
                log_probs, entropies = controller.score(taken, valid)
                advantages = torch.as_tensor(rewards, dtype=torch.float32) - baseline
                loss = -(advantages * log_probs).mean() - self.entropy_weight * entropies.mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                for reward in rewards:
                    baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * reward
            _, _, greedy, probabilities = self._sample(controller, space, generator, greedy=True)
            run.record(epoch, greedy, probabilities)
        finals = [
            self._sample(controller, space, generator, False)[2] for _ in range(self.final_samples)
        ]
        scores = net.scores(finals)
        return finals[int(scores.argmax())], None


SEARCHERS: dict[str, type[OneShotSearcher]] = {cls.name: cls for cls in (DARTS, GDAS, SPOS, ENAS)}
"""Searcher name -> class."""
