"""A weight-sharing supernet over a search space's architectures, for one-shot search.

One-shot NAS trains one network whose sub-networks are the candidates and reads a candidate's
quality off the shared ("inherited") weights: ENAS (Pham et al. 2018, "Efficient Neural
Architecture Search via Parameter Sharing"), DARTS (Liu et al. 2019, "DARTS: Differentiable
Architecture Search"), GDAS (Dong & Yang 2019, "Searching for a Robust Neural Architecture in
Four GPU Hours"), SPOS (Guo et al. 2020, "Single Path One-Shot Neural Architecture Search with
Uniform Sampling"). The searchers are in :mod:`agents.oneshot`.

:class:`Supernet` holds the parts of :class:`~nasenv.models.GraphRecommender` - user, item-ID
and text-projection embeddings - and, per depth ``d = 1..3``, one layer
(:func:`~nasenv.models.make_layer`) of every kind the space allows there. Six *decision groups*
have one architecture logit (alpha) per choice: ``layer1..layer3`` (``stop`` and the layers,
``sage`` once per allowed aggregator), ``combine``, ``items`` and ``loss``; ``dim``, ``lr`` and
``reg`` must have one value in the space (the core's 64, 0.02, 1e-4). A forward takes
:class:`PathWeights`, one weight per choice, and mixes:

* items: ``h_0 = sum_i w_i * input_i`` over ``id``, ``text`` and ``id+text`` (their sum);
* layers: ``h_d = sum_o w_do * op_do(h_{d-1})`` over the layer choices of depth ``d``;
* depth: ``stop`` at ``d`` ends the model at depth ``d - 1`` with every deeper layer absent, so
  depth ``d`` weighs ``prod_{j<=d} (1 - stop_j) * stop_{d+1}`` (``stop_4 = 1``);
* combination: concatenation changes the width, so paths are mixed in the scores, where widths
  do not matter: a pair scores ``sum_{d,c} w_d w_c <u_dc, i_dc>`` over depths ``d`` and
  combinations ``c`` (depth 0: ``last`` only) with the path's combined representations;
  :meth:`Supernet.forward` returns these scores as one inner product, the concatenation of
  ``sqrt(w_d w_c) * rep_dc``;
* loss: ``sum_l w_l * pair_loss(l, pos, neg)``, the mixture of BPR and BCE, plus the L2 penalty
  of :func:`~nasenv.train.train_architecture` on the batch's rows of ``h_0``.

A choice of weight exactly 0 is not computed, so one-hot weights (:meth:`Supernet.one_hot`)
compute exactly the architecture's model: the representations of :meth:`Supernet.extract`, a
``GraphRecommender`` holding the shared weights. Weights come as :meth:`~Supernet.mixed`
(softmax of the alphas, the layers of a depth as the softmax of their own logits, i.e. given no
stop: DARTS), :meth:`~Supernet.one_hot` (a single path: SPOS, ENAS) or :meth:`~Supernet.gumbel`
(a hard Gumbel-softmax sample, exactly 0 and 1 with the soft sample's gradient: GDAS). The loss
changes training only: inherited-weight scores never tell two losses apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn

from nasenv.metrics import FullRankingEvaluator
from nasenv.models import GraphRecommender, _operator, make_layer
from nasenv.space import (
    AGGREGATED_LAYERS,
    CORE,
    MAX_LAYERS,
    NO_AGGR,
    SLOTS,
    STOP,
    Architecture,
    Choice,
    SearchSpace,
)
from nasenv.train import TrainingContext, gather_rows, l2_penalty, pair_loss

__all__ = ["GROUPS", "PathWeights", "Supernet", "require_in_space"]

GROUPS = (*(f"layer{d}" for d in range(1, MAX_LAYERS + 1)), "combine", "items", "loss")
"""The decision groups, each with one architecture logit per choice."""
SPLITS = ("val", "test")


def require_in_space(arch: Architecture, space: SearchSpace) -> None:
    """Raise ``ValueError`` naming ``arch``, the space and the decision it refuses, unless
    ``arch`` is in ``space`` (a one-shot search never projects an architecture into its space)."""
    try:
        space.validate_values(arch.decisions())
    except ValueError as error:
        raise ValueError(f"{arch} is not in the {space.name} space: {error}") from None


@dataclass(frozen=True)
class PathWeights:
    """One weight per choice of every decision group (module docstring).

    Args:
        stop: per depth, the 0-d weight of ``stop``.
        ops: per depth, the weights of the layer choices given no stop (``choices["layer{d}"]``
            without its leading ``stop``).
        combine, items, loss: weights over those groups' choices.
    """

    stop: tuple[Tensor, ...]
    ops: tuple[Tensor, ...]
    combine: Tensor
    items: Tensor
    loss: Tensor


def _mix(weights: Tensor, branches: Sequence[Callable[[], Tensor]]) -> Tensor:
    """``sum_k weights[k] * branches[k]()``, computing only branches of nonzero weight. A zero
    weight that carries a gradient (a straight-through sample) is added as a scalar, as GDAS's
    reference code does: its value 0 changes nothing and its logit still gets a gradient."""
    terms, ghosts = [], []
    for weight, branch in zip(weights.unbind(), branches, strict=True):
        if float(weight.detach()) != 0.0:
            terms.append(branch() * weight)
        elif weight.requires_grad:
            ghosts.append(weight)
    if not terms:
        raise ValueError(f"every weight of {weights.tolist()} is zero: nothing to compute")
    return sum(terms[1:] + ghosts, terms[0])


class Supernet(nn.Module):
    """Shared weights of every architecture of ``space`` and one logit per choice of every
    decision group (module docstring).

    Args:
        context: the task's tensors and evaluators (:class:`~nasenv.train.TrainingContext`).
        space: the architectures: ``stop`` allowed at every depth and one ``dim``, ``lr`` and
            ``reg``; default :data:`~nasenv.space.CORE`.
        seed: draws the initial weights as ``GraphRecommender`` does (torch's global generator
            forked: the caller's state is left alone) and the alphas (``1e-3 * N(0, 1)``, as
            DARTS initialises them).
    """

    def __init__(self, context: TrainingContext, space: SearchSpace = CORE, seed: int = 0) -> None:
        super().__init__()
        self.context, self.space, self.graph = context, space, context.graph
        if space.slots != SLOTS:
            raise ValueError(
                f"a supernet shares one item text encoder: the {space.name} space has the "
                f"encoder decision; search a version 0 space (core, full)"
            )
        single = {name: space.slot_choices(name) for name in ("dim", "lr", "reg")}
        for name, values in single.items():
            if len(values) != 1:
                raise ValueError(f"a supernet shares one {name}: {space.name} allows {values}")
        self.dim, self.lr, self.reg = (
            int(single["dim"][0]),
            float(single["lr"][0]),
            float(single["reg"][0]),
        )
        self.choices: dict[str, tuple[str, ...]] = {}
        """Group -> its choices in the slots' order: layer tokens (``stop``, ``lgconv``,
        ``sage:mean``, ...), combinations, item inputs, losses."""
        for d in range(1, MAX_LAYERS + 1):
            aggrs = [a for a in space.slot_choices(f"aggr{d}") if a != NO_AGGR]
            layers = space.slot_choices(f"layer{d}")
            if STOP not in layers:
                raise ValueError(
                    f"a supernet needs stop at every depth: {space.name} layer{d} "
                    f"allows only {layers}"
                )
            self.choices[f"layer{d}"] = tuple(
                token
                for layer in layers
                for token in (
                    [f"{layer}:{a}" for a in aggrs] if layer in AGGREGATED_LAYERS else [str(layer)]
                )
            )
        for name in ("combine", "items", "loss"):
            self.choices[name] = tuple(str(c) for c in space.slot_choices(name))
        generator = torch.Generator().manual_seed(seed)
        self.arch_logits = nn.ParameterList(
            nn.Parameter(1e-3 * torch.randn(len(self.choices[g]), generator=generator))
            for g in GROUPS
        )
        items = set(self.choices["items"])
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            self.user_emb = nn.Embedding(self.graph.n_users, self.dim)
            nn.init.normal_(self.user_emb.weight, std=0.1)
            self.item_emb: nn.Embedding | None = None
            self.text_proj: nn.Linear | None = None
            if {"id", "id+text"} & items:
                self.item_emb = nn.Embedding(self.graph.n_items, self.dim)
                nn.init.normal_(self.item_emb.weight, std=0.1)
            if {"text", "id+text"} & items:
                text = context.item_text.float()
                self.register_buffer("item_text", text)
                width = text.shape[1]
                self.text_proj = nn.Linear(width, self.dim, bias=False)
                nn.init.normal_(self.text_proj.weight, std=0.1 / width**0.5)
            self.ops = nn.ModuleDict(  # "depth-token" -> layer, depth from 1
                {
                    f"{d + 1}-{token}": make_layer(*self._kind(token), self.dim)
                    for d in range(MAX_LAYERS)
                    for token in self.choices[f"layer{d + 1}"][1:]
                }
            )
        self.layer_logits = nn.ParameterList(  # combine=weighted, per depth
            nn.Parameter(torch.zeros(d + 2))
            for d in range(MAX_LAYERS if "weighted" in self.choices["combine"] else 0)
        )
        self.to(context.device)

    # -- the space -----------------------------------------------------------------------------

    @staticmethod
    def _kind(token: str) -> tuple[str, str]:
        layer, _, aggr = token.partition(":")
        return layer, aggr or NO_AGGR

    def _token(self, depth: int, picks: dict[str, int]) -> str:
        """The layer choice of :meth:`indices` ``picks`` at 0-based ``depth``."""
        return self.choices[f"layer{depth + 1}"][picks[f"layer{depth + 1}"]]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The weights every architecture inherits (all parameters but the alphas)."""
        return [p for name, p in self.named_parameters() if not name.startswith("arch_logits.")]

    def arch_parameters(self) -> list[nn.Parameter]:
        """The alphas, in the order of :data:`GROUPS`."""
        return list(self.arch_logits)

    @property
    def alphas(self) -> dict[str, nn.Parameter]:
        """Group -> its architecture logits (one per choice of :attr:`choices`)."""
        return dict(zip(GROUPS, self.arch_logits, strict=True))

    def probabilities(self) -> dict[str, tuple[float, ...]]:
        """Softmax of every group's alphas, in :attr:`choices` order."""
        return {g: tuple(torch.softmax(a.detach(), 0).tolist()) for g, a in self.alphas.items()}

    def indices(self, arch: Architecture) -> dict[str, int]:
        """The choice of every group that ``arch`` makes (``stop`` past its depth; at depth 0
        ``combine`` 0, unused); ``ValueError`` naming ``arch`` if it is outside the space."""
        require_in_space(arch, self.space)
        out = {f"layer{d + 1}": 0 for d in range(MAX_LAYERS)}  # stop
        for d, (layer, aggr) in enumerate(zip(arch.layers, arch.aggrs, strict=True)):
            token = layer if aggr == NO_AGGR else f"{layer}:{aggr}"
            out[f"layer{d + 1}"] = self.choices[f"layer{d + 1}"].index(token)
        out["combine"] = self.choices["combine"].index(arch.combine) if arch.depth else 0
        out["items"] = self.choices["items"].index(arch.items)
        out["loss"] = self.choices["loss"].index(arch.loss)
        return out

    def walk(self, pick: Callable[[str], int]) -> Architecture:
        """The architecture of ``pick(group)`` choice indices, asked in :data:`GROUPS` order
        where they matter only: no layer group after a ``stop``, no ``combine`` at depth 0.
        ``ValueError`` naming the architecture if the space does not hold it."""
        values: list[Choice] = []
        for d in range(1, MAX_LAYERS + 1):
            token = self.choices[f"layer{d}"][pick(f"layer{d}")]
            if token == STOP:
                break
            values += self._kind(token)
        depth = len(values) // 2
        combine = self.choices["combine"][pick("combine")] if depth else "last"
        items, loss = (self.choices[g][pick(g)] for g in ("items", "loss"))
        values += [STOP, NO_AGGR] * (MAX_LAYERS - depth)
        arch = Architecture.from_decisions(
            [*values, combine, self.dim, items, loss, self.lr, self.reg]
        )
        require_in_space(arch, self.space)
        return arch

    # -- architecture weights ------------------------------------------------------------------

    def _weights(self, vectors: dict[str, Tensor]) -> PathWeights:
        layers = [vectors[f"layer{d}"] for d in range(1, MAX_LAYERS + 1)]
        return PathWeights(
            tuple(v[0] for v in layers),
            tuple(v[1:] for v in layers),
            vectors["combine"],
            vectors["items"],
            vectors["loss"],
        )

    def _one_hot_vectors(self, arch: Architecture) -> dict[str, Tensor]:
        picks, device = self.indices(arch), self.arch_logits[0].device
        return {
            g: torch.zeros(len(self.choices[g]), device=device).index_fill_(
                0, torch.tensor([picks[g]], device=device), 1.0
            )
            for g in GROUPS
        }

    def one_hot(self, arch: Architecture) -> PathWeights:
        """Constant 0/1 weights of the single path ``arch`` (``ValueError`` outside the space)."""
        return self._weights(self._one_hot_vectors(arch))

    def mixed(self) -> PathWeights:
        """DARTS's continuous relaxation: the softmax of every group's alphas, the layer choices
        of a depth as the softmax of their own logits (given no stop there)."""
        weights = self._weights({g: torch.softmax(a, 0) for g, a in self.alphas.items()})
        ops = tuple(torch.softmax(self.alphas[f"layer{d}"][1:], 0) for d in (1, 2, 3))
        return dataclasses.replace(weights, ops=ops)

    def gumbel(self, tau: float, generator: torch.Generator) -> tuple[PathWeights, Architecture]:
        """GDAS's sample: per group on the path, ``argmax(alpha + g)`` with Gumbel noise ``g``
        from ``generator``, as weights ``one_hot + soft - soft.detach()`` (values exactly 0 and
        1; the gradient of ``soft = softmax((alpha + g) / tau)``); groups off the path get
        constant one-hot weights. Returns the weights and the sampled architecture."""
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        sampled: dict[str, Tensor] = {}

        def pick(group: str) -> int:
            alpha = self.alphas[group]
            noise = -torch.empty(len(alpha)).exponential_(generator=generator).log()
            soft = torch.softmax((alpha + noise.to(alpha.device)) / tau, 0)
            index = int(soft.argmax())
            hard = torch.zeros_like(soft).index_fill_(0, soft.argmax()[None], 1.0)
            sampled[group] = hard + (soft - soft.detach())
            return index

        arch = self.walk(pick)
        return self._weights(self._one_hot_vectors(arch) | sampled), arch

    def derive(self) -> Architecture:
        """The strongest choice of every group on the path (DARTS's and GDAS's derivation)."""
        return self.walk(lambda group: int(self.alphas[group].argmax()))

    def uniform_path(self, generator: torch.Generator) -> Architecture:
        """A path with every group on it drawn uniformly among its choices (SPOS)."""
        return self.walk(
            lambda g: int(torch.randint(len(self.choices[g]), (), generator=generator))
        )

    # -- forward -------------------------------------------------------------------------------

    def _item_input(self, choice: str) -> Tensor:
        """The items' rows of ``h_0`` for one item input (as ``GraphRecommender``)."""
        parts = []
        if choice in ("id", "id+text") and self.item_emb is not None:
            parts.append(self.item_emb.weight)
        if choice in ("text", "id+text") and self.text_proj is not None:
            parts.append(self.text_proj(self.item_text))
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    def _layer(self, depth: int, token: str, x: Tensor) -> Tensor:
        layer: nn.Module = self.ops[f"{depth + 1}-{token}"]
        return layer(x, _operator(self._kind(token)[0], self.graph))

    def _hidden(self, w: PathWeights) -> tuple[list[Tensor], list[Tensor]]:
        """Layer outputs ``h_0..h_D`` (``D`` the deepest depth of nonzero weight) and the weight
        of each depth ``0..D``."""
        items = _mix(w.items, [partial(self._item_input, c) for c in self.choices["items"]])
        hidden = [torch.cat([self.user_emb.weight, items])]
        reach, depths = torch.ones((), device=items.device), []
        for d in range(MAX_LAYERS):
            depths.append(reach * w.stop[d])
            reach = reach * (1 - w.stop[d])
            if float(reach.detach()) == 0.0:
                break
            tokens = self.choices[f"layer{d + 1}"][1:]
            hidden.append(_mix(w.ops[d], [partial(self._layer, d, t, hidden[-1]) for t in tokens]))
        else:
            depths.append(reach)
        return hidden, depths

    def _combine(self, kind: str, outputs: list[Tensor]) -> Tensor:
        """``GraphRecommender``'s layer combination of ``outputs`` (``h_0..h_d``)."""
        if kind == "last":
            return outputs[-1]
        if kind == "concat":
            return torch.cat(outputs, dim=1)
        stacked = torch.stack(outputs)
        if kind == "mean":
            return stacked.mean(0)
        if kind == "sum":
            return stacked.sum(0)
        weights = torch.softmax(self.layer_logits[len(outputs) - 2], 0)  # weighted
        return (stacked * weights[:, None, None]).sum(0)

    def _paths(self, w: PathWeights) -> tuple[list[tuple[Tensor, Tensor]], list[Tensor], Tensor]:
        """``(weight, combined representation)`` of every path (depth, combination) of nonzero
        weight, the zero weights that carry a gradient, and ``h_0``."""
        hidden, depths = self._hidden(w)
        paths, ghosts = [], []
        for d, weight_d in enumerate(depths):
            options = zip(w.combine.unbind(), self.choices["combine"], strict=True)
            for weight, kind in (
                [(weight_d * c, k) for c, k in options] if d else [(weight_d, "last")]
            ):
                if float(weight.detach()) != 0.0:
                    paths.append((weight, self._combine(kind, hidden[: d + 1])))
                elif weight.requires_grad:
                    ghosts.append(weight)
        return paths, ghosts, hidden[0]

    def forward(self, weights: PathWeights) -> tuple[Tensor, Tensor]:
        """User and item representations whose inner products are the mixed scores: the
        concatenation over paths of ``sqrt(weight) * representation`` (one path of weight 1:
        its representation)."""
        paths, _, _ = self._paths(weights)
        parts = [rep if float(wt.detach()) == 1.0 else rep * wt.sqrt() for wt, rep in paths]
        users, items = torch.cat(parts, dim=1).split([self.graph.n_users, self.graph.n_items])
        return users, items

    def loss(
        self,
        weights: PathWeights,
        users: Tensor,
        items: Tensor,
        negatives: Tensor,
        penalty: bool = True,
    ) -> Tensor:
        """The batch loss of :func:`~nasenv.train.train_architecture` under ``weights``: the
        mixed losses of the mixed scores of ``(users, items)`` against ``(users, negatives)``,
        plus (``penalty``) ``reg`` times the L2 penalty of the batch's rows of ``h_0``."""
        nodes = torch.cat([users, self.graph.n_users + items, self.graph.n_users + negatives])
        paths, ghosts, x0 = self._paths(weights)
        pos, neg = [], []
        for weight, rep in paths:
            u, i, j = gather_rows(rep, nodes).chunk(3)
            pos.append(weight * (u * i).sum(1))
            neg.append(weight * (u * j).sum(1))
        p, n = sum(pos[1:] + ghosts, pos[0]), sum(neg[1:] + ghosts, neg[0])
        loss = _mix(weights.loss, [partial(pair_loss, k, p, n) for k in self.choices["loss"]])
        if penalty and self.reg:
            loss = loss + self.reg * l2_penalty(x0, nodes, len(users))
        return loss

    # -- single architectures ------------------------------------------------------------------

    def extract(self, arch: Architecture) -> GraphRecommender:
        """A standalone ``GraphRecommender`` of ``arch`` holding copies of the weights it
        inherits (``ValueError`` naming ``arch`` outside the space)."""
        picks = self.indices(arch)
        text = self.context.item_text if arch.items != "id" else None
        with torch.random.fork_rng(devices=[]):  # its own initialisation is overwritten
            model = GraphRecommender(arch, self.graph, text).to(self.context.device)
        with torch.no_grad():
            model.user_emb.weight.copy_(self.user_emb.weight)
            if model.item_emb is not None and self.item_emb is not None:
                model.item_emb.weight.copy_(self.item_emb.weight)
            if model.text_proj is not None and self.text_proj is not None:
                model.text_proj.weight.copy_(self.text_proj.weight)
            for d, layer in enumerate(model.layers):
                layer.load_state_dict(self.ops[f"{d + 1}-{self._token(d, picks)}"].state_dict())
            if model.layer_logits is not None:
                model.layer_logits.copy_(self.layer_logits[arch.depth - 1])
        return model

    @torch.no_grad()
    def scores(
        self,
        archs: Iterable[Architecture],
        split: str = "val",
        evaluator: FullRankingEvaluator | None = None,
    ) -> np.ndarray:
        """Inherited-weight Recall@K of each of ``archs`` on ``split`` (``val``; ``test`` is for
        reports, never for selection) or with ``evaluator``: that of its :meth:`extract`.
        Layer outputs are shared by architectures with one item input and layer prefix, and
        those that differ in the loss alone are ranked once (their forwards are one)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; allowed: {list(SPLITS)}")
        if evaluator is None:
            evaluator = self.context.val_eval if split == "val" else self.context.test_eval
        archs = list(archs)
        out, done = np.empty(len(archs)), {}
        cache: dict[tuple[str, ...], Tensor] = {}
        for k in sorted(range(len(archs)), key=lambda k: (archs[k].items, archs[k].layers)):
            arch = archs[k]
            key = (arch.items, arch.layers, arch.aggrs, arch.combine)  # all but the loss
            if key not in done:
                picks = self.indices(arch)
                path = (arch.items, *(self._token(d, picks) for d in range(arch.depth)))
                cache = {p: h for p, h in cache.items() if path[: len(p)] == p}
                hidden = [self._cached(path[:end], cache) for end in range(1, len(path) + 1)]
                rep = self._combine(arch.combine, hidden)
                done[key] = evaluator(*rep.split([self.graph.n_users, self.graph.n_items])).recall
            out[k] = done[key]
        return out

    def _cached(self, path: tuple[str, ...], cache: dict[tuple[str, ...], Tensor]) -> Tensor:
        """``h_d`` of a path (item input, then layer tokens), kept in ``cache``."""
        if path not in cache:
            if len(path) == 1:
                cache[path] = torch.cat([self.user_emb.weight, self._item_input(path[0])])
            else:
                cache[path] = self._layer(len(path) - 2, path[-1], self._cached(path[:-1], cache))
        return cache[path]

    def score(self, arch: Architecture, split: str = "val") -> float:
        """Inherited-weight Recall@K of one architecture on ``split``."""
        return float(self.scores([arch], split)[0])
