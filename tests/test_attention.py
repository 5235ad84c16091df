"""The attention layer as sparse products computes what PyG's GATConv computes."""

import pytest
import torch
from torch_geometric.nn import GATConv

from nasenv.attention import FastGATConv, attention_graph
from nasenv.models import GraphRecommender, build_graph
from nasenv.space import Architecture


def _bipartite(n_users: int = 30, n_items: int = 40, pairs: int = 200, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    users = torch.randint(n_users, (pairs,), generator=generator)
    items = torch.randint(n_items, (pairs,), generator=generator)
    train = torch.unique(torch.stack([users, items], 1), dim=0)
    return build_graph(train, n_users, n_items)


@pytest.mark.parametrize("dim", [4, 16])
def test_fast_gat_equals_pyg_gat_in_value_and_every_gradient(dim):
    graph = _bipartite()
    torch.manual_seed(0)
    fast = FastGATConv(dim, dim)
    torch.manual_seed(0)
    reference = GATConv(dim, dim, heads=1, add_self_loops=True)
    assert fast.state_dict().keys() == reference.state_dict().keys()
    states = fast.state_dict().values(), reference.state_dict().values()
    for mine, theirs in zip(*states, strict=True):
        assert torch.equal(mine, theirs)  # the same initialisation from the same RNG state
    with torch.no_grad():  # attention vectors and bias away from their initial values
        for layer in (fast, reference):
            layer.att_src.copy_(torch.linspace(-1, 1, dim).view(1, 1, dim))
            layer.bias.fill_(0.1)
    x = torch.randn(graph.n_nodes, dim, requires_grad=True)
    weights = torch.randn(graph.n_nodes, dim)
    edges = graph.attention.src[graph.attention.src != graph.attention.dst]
    assert len(edges) == len(graph.attention.src) - graph.n_nodes
    coo = graph.binary.to_sparse_coo().coalesce().indices()
    # PyG's message passing: row 0 the source j, row 1 the target i
    outputs = {"fast": fast(x, graph.attention), "pyg": reference(x, coo.flip(0))}
    assert torch.allclose(outputs["fast"], outputs["pyg"], atol=1e-6)
    grads = {}
    for name, layer in (("fast", fast), ("pyg", reference)):
        params = list(layer.parameters())
        grads[name] = torch.autograd.grad((outputs[name] * weights).sum(), [x, *params])
    for mine, theirs in zip(grads["fast"], grads["pyg"], strict=True):
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-5)


def test_the_attention_graph_is_a_plus_i_in_csr_order_and_refuses_other_graphs():
    graph = _bipartite()
    structure = graph.attention
    dense = torch.zeros(graph.n_nodes, graph.n_nodes)
    dense[structure.dst, structure.src] = 1.0
    expected = graph.binary.to_dense() + torch.eye(graph.n_nodes)
    assert torch.equal(dense, expected)
    keys = structure.dst * graph.n_nodes + structure.src
    assert bool((keys[1:] > keys[:-1]).all())  # row-major, no duplicates
    assert torch.equal(structure.src[structure.transpose], structure.dst)
    assert torch.equal(structure.crow.diff(), expected.sum(1).long())
    with pytest.raises(ValueError, match="not symmetric"):
        attention_graph(torch.tensor([[0, 1], [1, 2]]), 3)
    with pytest.raises(ValueError, match="self-loops"):
        attention_graph(torch.tensor([[0, 1, 1], [1, 0, 1]]), 2)
    with pytest.raises(ValueError, match="heads=2"):
        FastGATConv(4, 4, heads=2)


def test_a_recommender_with_attention_layers_trains_its_attention():
    graph = _bipartite()
    arch = Architecture.from_string(
        "layers=gat-lgconv,combine=mean,dim=16,items=id,loss=bpr,lr=0.01,reg=0.0001"
    )
    torch.manual_seed(0)
    model = GraphRecommender(arch, graph)
    users, items = model.node_representations()[0].split([graph.n_users, graph.n_items])
    (users @ items.T).sum().backward()
    gat = model.layers[0]
    assert isinstance(gat, FastGATConv)
    assert gat.att_src.grad is not None and gat.att_src.grad.abs().sum() > 0
    assert model.user_emb.weight.grad is not None


def test_the_attention_layer_is_deterministic_across_threads():
    graph = _bipartite(300, 400, 5000)  # large enough for torch to split the work
    torch.manual_seed(0)
    layer = FastGATConv(16, 16)
    x = torch.randn(graph.n_nodes, 16, requires_grad=True)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 1):
            torch.set_num_threads(n)
            out = layer(x, graph.attention)
            results.append((out, *torch.autograd.grad(out.square().sum(), [x, layer.att_dst])))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other, strict=True))
