"""Graph attention as sparse products: the ``gat`` layer without per-edge feature rows.

PyG's :class:`~torch_geometric.nn.GATConv` gathers a source row for every edge, scales it by
the edge's attention and scatter-adds it into the destination: each step moves
``edges x dim`` floats several times forward and backward (about 5 s of a 6 s epoch on
Books-20core at one thread). Here the attention weights become the values of a CSR matrix
over ``A + I`` and the aggregation one sparse-dense product:

* forward: ``out = alpha @ h``, with ``alpha`` the edge softmax of
  ``leaky_relu(a_src . h_j + a_dst . h_i)`` over each node's in-edges (self-loop included);
* backward: ``grad_h = alpha^T @ grad``, again a CSR product because ``A + I`` is symmetric
  (``alpha^T`` is ``alpha``'s values permuted), and ``grad_alpha_ij = grad_i . h_j`` only at the
  graph's entries, a sampled dense product (:func:`torch.sparse.sampled_addmm`).

Only per-edge scalars (scores and their softmax) remain per-edge work. The layer is PyG's
(:class:`FastGATConv` subclasses it: same parameters, initialisation and state dict) and computes
the same function in another floating-point order (tested against it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import GATConv
from torch_geometric.utils import softmax


def _csr(structure: AttentionGraph, values: Tensor) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            structure.crow,
            structure.src,
            values,
            (structure.n_nodes, structure.n_nodes),
            check_invariants=False,  # attention_graph built a valid structure once
        )


@dataclass(frozen=True, eq=False)
class AttentionGraph:
    """The entries of ``A + I`` in CSR order: row ``dst[e]`` (the node that attends), column
    ``src[e]`` (its neighbour). Built by :func:`attention_graph`."""

    n_nodes: int
    crow: Tensor  # (n_nodes + 1,) row pointers
    src: Tensor  # (nnz,) column of each entry
    dst: Tensor  # (nnz,) row of each entry
    transpose: Tensor  # (nnz,) the position of entry (j, i) for each entry (i, j)

    def to(self, device: torch.device | str) -> AttentionGraph:
        """The same structure on ``device``."""
        return AttentionGraph(
            self.n_nodes,
            self.crow.to(device),
            self.src.to(device),
            self.dst.to(device),
            self.transpose.to(device),
        )


def attention_graph(edge_index: Tensor, n_nodes: int) -> AttentionGraph:
    """The attention structure of an undirected graph given as ``(2, E)`` directed edges (both
    directions listed, no self-loops): its edges plus one self-loop per node, as GATConv's
    ``add_self_loops=True`` attends.

    Raises:
        ValueError: the edges are not symmetric, or contain a self-loop.
    """
    src, dst = edge_index[0].long(), edge_index[1].long()
    if bool((src == dst).any()):
        raise ValueError("edge_index holds self-loops; the attention graph adds its own")
    loops = torch.arange(n_nodes, device=edge_index.device)
    src, dst = torch.cat([src, loops]), torch.cat([dst, loops])
    key = dst * n_nodes + src
    order = torch.argsort(key)
    key, src, dst = key[order], src[order], dst[order]
    reverse = src * n_nodes + dst
    transpose = torch.searchsorted(key, reverse).clamp(max=len(key) - 1)
    if not torch.equal(key[transpose], reverse):
        raise ValueError("edge_index is not symmetric: every edge needs its reverse")
    crow = torch.zeros(n_nodes + 1, dtype=torch.long, device=edge_index.device)
    crow[1:] = torch.cumsum(torch.bincount(dst, minlength=n_nodes), 0)
    return AttentionGraph(n_nodes, crow, src, dst, transpose)


class _AttentionSpMM(torch.autograd.Function):
    """``out = alpha @ h`` for CSR attention values ``alpha`` on ``A + I``; see the module."""

    @staticmethod
    def forward(ctx, alpha: Tensor, h: Tensor, structure: AttentionGraph) -> Tensor:
        ctx.structure = structure
        ctx.save_for_backward(alpha, h)
        return _csr(structure, alpha) @ h

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        alpha, h = ctx.saved_tensors
        structure: AttentionGraph = ctx.structure
        grad = grad.contiguous()
        grad_alpha = grad_h = None
        if ctx.needs_input_grad[1]:
            grad_h = _csr(structure, alpha[structure.transpose]) @ grad
        if ctx.needs_input_grad[0]:
            pattern = _csr(structure, torch.zeros_like(alpha))
            sampled = torch.sparse.sampled_addmm(pattern, grad, h.t(), beta=0.0)
            grad_alpha = sampled.values()
        return grad_alpha, grad_h, None


class FastGATConv(GATConv):
    """:class:`~torch_geometric.nn.GATConv` with one head on an :class:`AttentionGraph`.

    Construct it as ``FastGATConv(dim, dim)``; its forward takes ``(x, structure)``. Edge
    features, several heads and separate source/target inputs are not supported (the
    recommender uses none of them).
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        heads, loops = kwargs.pop("heads", 1), kwargs.pop("add_self_loops", True)
        if heads != 1 or not loops or kwargs.get("edge_dim") is not None:
            raise ValueError(
                f"FastGATConv attends with one head over A + I, without edge features; got "
                f"heads={heads}, add_self_loops={loops}, edge_dim={kwargs.get('edge_dim')}"
            )
        super().__init__(in_channels, out_channels, heads=1, add_self_loops=True, **kwargs)

    def forward(self, x: Tensor, structure: AttentionGraph) -> Tensor:
        if self.lin is None:
            raise ValueError("FastGATConv needs one input size for sources and targets")
        h = self.lin(x).view(-1, 1, self.out_channels)
        score_src = (h * self.att_src).sum(dim=-1).view(-1)
        score_dst = (h * self.att_dst).sum(dim=-1).view(-1)
        scores = score_src[structure.src] + score_dst[structure.dst]
        scores = F.leaky_relu(scores, self.negative_slope)
        alpha = softmax(scores, structure.dst, ptr=structure.crow, num_nodes=structure.n_nodes)
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        out = _AttentionSpMM.apply(alpha, h.view(-1, self.out_channels), structure)
        if self.res is not None:
            out = out + self.res(x)
        if self.bias is not None:
            out = out + self.bias
        return out
