"""An :class:`~nasenv.space.Architecture` -> a ``torch.nn.Module`` built from PyG layers.

The user-item graph is one undirected graph over ``n_users + n_items`` nodes (users first).
Message passing runs on sparse CSR adjacencies, PyG's fastest CPU route, and because every
adjacency here is symmetric the PyG layers below compute their backward pass as ``A @ grad``
instead of transposing ``A`` at every step (measured 4x faster per layer on Books-20core).

Layers (none is followed by an extra non-linearity: linear propagation is what works for
collaborative filtering, He et al. 2020 "LightGCN", Chen et al. 2020 "LR-GCCF"):

* ``lgconv`` - :class:`torch_geometric.nn.LGConv` on ``D^-1/2 A D^-1/2``;
* ``gcn`` - :class:`torch_geometric.nn.GCNConv` on ``D~^-1/2 (A + I) D~^-1/2``;
* ``sage`` - :class:`torch_geometric.nn.SAGEConv` with the chosen aggregator on ``A``;
* ``gin`` - :class:`torch_geometric.nn.GINConv` with a 2-layer MLP, sum over ``D^-1/2 A D^-1/2``
  (a raw sum over hundreds of neighbours diverges);
* ``gat`` - :class:`torch_geometric.nn.GATConv`, one head, attending over ``A + I``, computed as
  sparse products (:mod:`nasenv.attention`); per-edge scores make it the slowest layer, and it is
  left out of the tabulated core space.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import GCNConv, GINConv, LGConv, SAGEConv

from nasenv.attention import AttentionGraph, FastGATConv, attention_graph
from nasenv.space import Architecture


class _SymmetricSpMM(torch.autograd.Function):
    """``diag(row_scale) @ A @ x`` for a symmetric CSR ``A``; backward ``A @ (row_scale * g)``."""

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor, row_scale: Tensor | None) -> Tensor:
        ctx.adj, ctx.row_scale = adj, row_scale
        out = adj @ x
        return out if row_scale is None else out * row_scale

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor, None]:
        if ctx.row_scale is not None:
            grad = grad * ctx.row_scale
        return None, ctx.adj @ grad.contiguous(), None


def symmetric_spmm(adj: Tensor, x: Tensor, row_scale: Tensor | None = None) -> Tensor:
    """Sparse-dense product for a symmetric CSR ``adj`` with an exact, transpose-free backward."""
    return _SymmetricSpMM.apply(adj, x, row_scale)


class _SymmetricAggregation:
    """Mixin for PyG convs: sum/mean aggregation through :func:`symmetric_spmm`."""

    aggr: str

    def message_and_aggregate(self, adj_t: Tensor, x: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        source = x[0] if isinstance(x, tuple) else x
        if self.aggr in ("add", "sum"):
            return symmetric_spmm(adj_t, source)
        if self.aggr == "mean":
            degree = adj_t.crow_indices().diff().clamp(min=1).to(source.dtype)
            return symmetric_spmm(adj_t, source, degree.reciprocal().unsqueeze(1))
        return super().message_and_aggregate(adj_t, x)  # type: ignore[misc]


class FastLGConv(_SymmetricAggregation, LGConv):
    """:class:`~torch_geometric.nn.LGConv` with the symmetric backward."""


class FastGCNConv(_SymmetricAggregation, GCNConv):
    """:class:`~torch_geometric.nn.GCNConv` with the symmetric backward."""


class FastSAGEConv(_SymmetricAggregation, SAGEConv):
    """:class:`~torch_geometric.nn.SAGEConv` with the symmetric backward (max: PyG's own)."""


class FastGINConv(_SymmetricAggregation, GINConv):
    """:class:`~torch_geometric.nn.GINConv` with the symmetric backward."""


@dataclass(frozen=True, eq=False)
class Graph:
    """The training graph's operators, built once per dataset by :func:`build_graph`."""

    n_users: int
    n_items: int
    norm: Tensor  # D^-1/2 A D^-1/2, CSR
    gcn_norm: Tensor  # D~^-1/2 (A + I) D~^-1/2, CSR
    binary: Tensor  # A, CSR
    attention: AttentionGraph  # A + I for the attention layers

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items

    def to(self, device: torch.device | str) -> Graph:
        """The same operators on ``device``."""
        return Graph(
            n_users=self.n_users,
            n_items=self.n_items,
            norm=self.norm.to(device),
            gcn_norm=self.gcn_norm.to(device),
            binary=self.binary.to(device),
            attention=self.attention.to(device),
        )


def build_graph(train: Tensor, n_users: int, n_items: int) -> Graph:
    """Adjacency operators of the bipartite graph of ``train`` ``(n, 2)`` user-item pairs."""
    n = n_users + n_items
    users, items = train[:, 0].long(), train[:, 1].long() + n_users
    row, col = torch.cat([users, items]), torch.cat([items, users])
    ones = torch.ones(len(row))

    def csr(r: Tensor, c: Tensor, v: Tensor) -> Tensor:
        coo = torch.sparse_coo_tensor(torch.stack([r, c]), v, (n, n), check_invariants=False)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return coo.coalesce().to_sparse_csr()

    degree = torch.bincount(row, minlength=n).float()
    inv_sqrt = degree.clamp(min=1).rsqrt()
    loops = torch.arange(n)
    tilde = (degree + 1).rsqrt()
    return Graph(
        n_users=n_users,
        n_items=n_items,
        norm=csr(row, col, inv_sqrt[row] * inv_sqrt[col]),
        gcn_norm=csr(
            torch.cat([row, loops]),
            torch.cat([col, loops]),
            torch.cat([tilde[row] * tilde[col], tilde * tilde]),
        ),
        binary=csr(row, col, ones),
        attention=attention_graph(torch.stack([row, col]), n),
    )


def make_layer(kind: str, aggr: str, dim: int) -> nn.Module:
    """One message-passing layer ``dim -> dim`` of the given kind."""
    if kind == "lgconv":
        return FastLGConv(normalize=False)
    if kind == "gcn":
        return FastGCNConv(dim, dim, normalize=False, add_self_loops=False)
    if kind == "sage":
        return FastSAGEConv(dim, dim, aggr=aggr)
    if kind == "gin":
        mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        return FastGINConv(mlp, train_eps=True)
    if kind == "gat":
        return FastGATConv(dim, dim)
    raise ValueError(f"unknown layer {kind!r}; known: lgconv, gcn, sage, gin, gat")


def _operator(kind: str, graph: Graph) -> Tensor | AttentionGraph:
    operators: dict[str, Tensor | AttentionGraph] = {
        "lgconv": graph.norm,
        "gcn": graph.gcn_norm,
        "sage": graph.binary,
        "gin": graph.norm,
        "gat": graph.attention,
    }
    return operators[kind]


class GraphRecommender(nn.Module):
    """Embeddings -> message-passing layers -> layer combination -> dot-product scores.

    Args:
        arch: the design to build.
        graph: training graph of the dataset (:func:`build_graph`).
        item_text: ``(n_items, t)`` fixed item text features; needed unless ``arch.items == "id"``.
    """

    def __init__(self, arch: Architecture, graph: Graph, item_text: Tensor | None = None) -> None:
        super().__init__()
        self.arch, self.graph, dim = arch, graph, arch.dim
        self.user_emb = nn.Embedding(graph.n_users, dim)
        nn.init.normal_(self.user_emb.weight, std=0.1)
        self.item_emb: nn.Embedding | None = None
        self.text_proj: nn.Linear | None = None
        if arch.items in ("id", "id+text"):
            self.item_emb = nn.Embedding(graph.n_items, dim)
            nn.init.normal_(self.item_emb.weight, std=0.1)
        if arch.items in ("text", "id+text"):
            if item_text is None or item_text.shape[1] == 0:
                raise ValueError(
                    f"items={arch.items!r} needs item text features; this task has none (an "
                    "ID-only task: only items='id')"
                )
            self.register_buffer("item_text", item_text.float())
            self.text_proj = nn.Linear(item_text.shape[1], dim, bias=False)
            # unit-variance features: keep the projection's output at the ID embeddings' scale
            nn.init.normal_(self.text_proj.weight, std=0.1 / item_text.shape[1] ** 0.5)
        self.layers = nn.ModuleList(
            make_layer(kind, aggr, dim) for kind, aggr in zip(arch.layers, arch.aggrs, strict=True)
        )
        self.operators = [_operator(kind, graph) for kind in arch.layers]
        self.layer_logits = (
            nn.Parameter(torch.zeros(arch.depth + 1)) if arch.combine == "weighted" else None
        )

    @property
    def out_dim(self) -> int:
        """Size of the final user/item representations."""
        return self.arch.dim * (self.arch.depth + 1 if self.arch.combine == "concat" else 1)

    def input_embeddings(self) -> Tensor:
        """Layer-0 node features, users first: ``(n_users + n_items, dim)``."""
        items: Tensor | None = None
        if self.item_emb is not None:
            items = self.item_emb.weight
        if self.text_proj is not None:
            text = self.text_proj(self.item_text)
            items = text if items is None else items + text
        if items is None:
            raise ValueError(f"unknown item features {self.arch.items!r}")
        return torch.cat([self.user_emb.weight, items])

    def node_representations(self) -> tuple[Tensor, Tensor]:
        """Final representations of all nodes (users first) and the layer-0 input."""
        x0 = self.input_embeddings()
        outputs = [x0]
        for layer, operator in zip(self.layers, self.operators, strict=True):
            outputs.append(layer(outputs[-1], operator))
        combine = self.arch.combine
        if combine == "last":
            out = outputs[-1]
        elif combine == "mean":
            out = torch.stack(outputs).mean(0)
        elif combine == "sum":
            out = torch.stack(outputs).sum(0)
        elif combine == "concat":
            out = torch.cat(outputs, dim=1)
        else:  # "weighted", the only combination with logits
            if self.layer_logits is None:
                raise ValueError(f"unknown layer combination {combine!r}")
            weights = torch.softmax(self.layer_logits, 0)
            out = (torch.stack(outputs) * weights[:, None, None]).sum(0)
        return out, x0

    def forward(self) -> tuple[Tensor, Tensor]:
        """Final user and item representations."""
        out, _ = self.node_representations()
        users, items = out.split([self.graph.n_users, self.graph.n_items])
        return users, items


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
