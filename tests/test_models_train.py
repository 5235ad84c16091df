import dataclasses
import math

import pytest
import torch
from torch_geometric.nn import GCNConv, GINConv, LGConv, SAGEConv

from nasenv.models import (
    FastGCNConv,
    FastGINConv,
    FastLGConv,
    FastSAGEConv,
    GraphRecommender,
    build_graph,
    symmetric_spmm,
)
from nasenv.results import PROTOCOL_VERSION, TrainConfig, TrainResult
from nasenv.space import FULL, SLOTS, Architecture
from nasenv.train import (
    NegativeSampler,
    TrainingContext,
    gather_rows,
    l2_penalty,
    train_architecture,
)

BASE = "layers=lgconv,combine=mean,dim=16,items=id,loss=bpr,lr=0.01,reg=0.0001"


def _graph():
    train = torch.tensor([[0, 0], [0, 1], [1, 1], [1, 2], [2, 0], [2, 3], [3, 2], [3, 3]])
    return build_graph(train, n_users=4, n_items=4)


def test_symmetric_spmm_gradient_matches_dense_autograd():
    graph = _graph()
    dense = graph.norm.to_dense()
    assert torch.allclose(dense, dense.T)
    x = torch.randn(graph.n_nodes, 3, requires_grad=True)
    scale = torch.rand(graph.n_nodes, 1)
    weights = torch.randn(graph.n_nodes, 3)
    (symmetric_spmm(graph.norm, x, scale) * weights).sum().backward()
    expected_grad = torch.autograd.grad(((scale * (dense @ x)) * weights).sum(), x)[0]
    assert torch.allclose(x.grad, expected_grad, atol=1e-6)


@pytest.mark.parametrize(
    ("fast", "reference", "operator"),
    [
        (lambda: FastLGConv(normalize=False), lambda: LGConv(normalize=False), "norm"),
        (
            lambda: FastGCNConv(3, 3, normalize=False, add_self_loops=False),
            lambda: GCNConv(3, 3, normalize=False, add_self_loops=False),
            "gcn_norm",
        ),
        (lambda: FastSAGEConv(3, 3, aggr="mean"), lambda: SAGEConv(3, 3, aggr="mean"), "binary"),
        (lambda: FastSAGEConv(3, 3, aggr="max"), lambda: SAGEConv(3, 3, aggr="max"), "binary"),
        (lambda: FastSAGEConv(3, 3, aggr="sum"), lambda: SAGEConv(3, 3, aggr="sum"), "binary"),
        (
            lambda: FastGINConv(torch.nn.Linear(3, 3)),
            lambda: GINConv(torch.nn.Linear(3, 3)),
            "norm",
        ),
    ],
)
def test_fast_layers_equal_pyg_layers_on_edge_index(fast, reference, operator):
    """The fast CSR route must compute exactly what the PyG layer computes on edge_index."""
    graph = _graph()
    torch.manual_seed(0)
    fast_layer = fast()
    torch.manual_seed(0)
    ref_layer = reference()
    ref_layer.load_state_dict(fast_layer.state_dict())
    x = torch.randn(graph.n_nodes, 3, requires_grad=True)
    adj = getattr(graph, operator).to_sparse_coo().coalesce()
    edge_index, edge_weight = adj.indices(), adj.values()
    out_fast = fast_layer(x, getattr(graph, operator))
    if isinstance(ref_layer, (LGConv, GCNConv)):
        out_ref = ref_layer(x, edge_index, edge_weight)
    elif isinstance(ref_layer, GINConv):
        # GIN sums raw neighbours; with unit weights the normalised operator is not comparable
        out_ref = ref_layer.nn((1 + ref_layer.eps) * x + getattr(graph, operator) @ x)
    else:
        out_ref = ref_layer(x, edge_index)
    assert torch.allclose(out_fast, out_ref, atol=1e-5)
    grad_fast = torch.autograd.grad(out_fast.square().sum(), x)[0]
    grad_ref = torch.autograd.grad(out_ref.square().sum(), x)[0]
    assert torch.allclose(grad_fast, grad_ref, atol=1e-5)


def _variants():
    """One architecture per choice of every slot, completed greedily with valid decisions."""
    base = Architecture.from_string(BASE).decisions()
    seen = set()
    for target, slot in enumerate(SLOTS):
        for choice in slot.choices:
            depth = int(slot.name[-1]) if slot.name[-1].isdigit() else 0
            values = []
            for index, other in enumerate(SLOTS):
                valid = [c for c, ok in zip(other.choices, FULL.mask(values), strict=True) if ok]
                if index == target:
                    wanted = choice
                elif other.name.startswith("layer") and int(other.name[-1]) < depth:
                    wanted = "lgconv"
                elif other.name == f"layer{depth}" and slot.name.startswith("aggr"):
                    wanted = "sage"
                else:
                    wanted = base[index]
                values.append(wanted if wanted in valid else valid[0])
            if values[target] != choice:
                continue  # unreachable in combination (e.g. an aggregator for a non-SAGE layer)
            arch = Architecture.from_decisions(values)
            if arch not in seen:
                seen.add(arch)
                yield arch


def test_variants_cover_every_choice():
    covered = {(i, v) for arch in _variants() for i, v in enumerate(arch.decisions())}
    assert covered == {(i, c) for i, slot in enumerate(SLOTS) for c in slot.choices}


@pytest.mark.parametrize("arch", list(_variants()), ids=str)
def test_every_choice_builds_and_trains_one_step(arch, tiny_context):
    assert arch in FULL
    result = train_architecture(
        arch, tiny_context, seed=0, config=TrainConfig(max_epochs=1, batch_size=64)
    )
    assert result.ok, result.reason
    assert len(result.val_recall) == 1 and 0.0 <= result.val_recall[0] <= 1.0
    assert result.n_params > 0 and result.inference_ms > 0


def test_training_learns_the_planted_structure(tiny_context):
    generator = torch.Generator().manual_seed(0)
    n_users, n_items = tiny_context.graph.n_users, tiny_context.graph.n_items
    chance = (
        sum(
            tiny_context.val_eval(
                torch.randn(n_users, 4, generator=generator),
                torch.randn(n_items, 4, generator=generator),
            ).recall
            for _ in range(20)
        )
        / 20
    )
    config = TrainConfig(max_epochs=30, patience=30, batch_size=32)
    mf = Architecture.from_string("layers=none,combine=last,dim=16,items=id,loss=bpr,lr=0.05,reg=0")
    result = train_architecture(mf, tiny_context, seed=0, config=config)
    assert result.val_recall_best > 1.8 * chance
    assert result.val_recall[-1] > result.val_recall[0] + 0.1
    assert result.test_recall > 1.5 * chance
    assert len(result.epoch_seconds) == len(result.val_recall) == len(result.test_recall_at_best)
    assert list(result.epoch_seconds) == sorted(result.epoch_seconds)


def test_same_seed_same_result_and_other_seed_differs(tiny_context):
    arch = Architecture.from_string(BASE.replace("items=id", "items=id+text"))
    config = TrainConfig(max_epochs=3, batch_size=32)
    first = train_architecture(arch, tiny_context, seed=7, config=config)
    second = train_architecture(arch, tiny_context, seed=7, config=config)
    other = train_architecture(arch, tiny_context, seed=8, config=config)
    assert first.val_recall == second.val_recall and first.val_ndcg == second.val_ndcg
    assert first.test_recall_at_best == second.test_recall_at_best
    assert first.val_ndcg != other.val_ndcg


def test_early_stopping_and_best_epoch(tiny_context):
    arch = Architecture.from_string(BASE)
    result = train_architecture(
        arch, tiny_context, 0, TrainConfig(max_epochs=200, patience=2, batch_size=32)
    )
    assert len(result.val_recall) < 200
    assert len(result.val_recall) - result.best_epoch == 2  # patience 2 after the best


def test_divergent_training_is_a_failed_result_not_an_exception(tiny_context, exploding_adam):
    arch = Architecture.from_string(BASE)
    exploding = dataclasses.replace(arch, loss="bce")
    result = train_architecture(
        exploding, tiny_context, 0, TrainConfig(max_epochs=5, batch_size=32)
    )
    assert result.status == "failed"
    assert "non-finite" in result.reason
    assert math.isnan(result.inference_ms)


def test_result_round_trips_through_a_dict(tiny_context):
    arch = Architecture.from_string(BASE)
    result = train_architecture(arch, tiny_context, 0, TrainConfig(max_epochs=2, batch_size=32))
    assert result.protocol == PROTOCOL_VERSION == 4
    assert TrainResult.from_dict(result.to_dict()) == result
    older = {k: v for k, v in result.to_dict().items() if k != "protocol"}
    assert TrainResult.from_dict(older).protocol == 2  # written before the version was kept


def test_the_counted_l2_penalty_is_the_gathered_one():
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(50, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    nodes = torch.randint(50, (3 * 40,), generator=generator)  # repeats, as in a batch
    nodes[:5] = 7  # one row five times more
    gathered = gather_rows(x0, nodes).square().sum() / (2 * 40)
    (expected,) = torch.autograd.grad(gathered, x0)
    counted = l2_penalty(x0, nodes, 40)
    (gradient,) = torch.autograd.grad(counted, x0)
    torch.testing.assert_close(counted, gathered)
    torch.testing.assert_close(gradient, expected)
    unused = torch.ones(50, dtype=torch.bool)
    unused[nodes] = False
    assert unused.any() and (gradient[unused] == 0).all()  # rows not in the batch: no gradient


def test_negative_sampler_avoids_training_positives(tiny_context):
    sampler = NegativeSampler(tiny_context.val_eval.seen)
    users = tiny_context.train[:, 0].repeat(20)
    negatives = sampler(users, torch.Generator().manual_seed(0))
    assert not tiny_context.val_eval.seen.contains(users, negatives).any()


def test_config_validation():
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(patience=0)


def test_text_items_need_features(tiny_context):
    arch = Architecture.from_string(BASE.replace("items=id", "items=text"))
    with pytest.raises(ValueError, match="needs item text features"):
        GraphRecommender(arch, tiny_context.graph, None)


def test_lower_fidelity_is_an_exact_prefix_of_a_longer_run(tiny_context):
    arch = Architecture.from_string(BASE)
    long = train_architecture(arch, tiny_context, 3, TrainConfig(12, patience=12, batch_size=32))
    short = train_architecture(arch, tiny_context, 3, TrainConfig(6, patience=2, batch_size=32))
    derived = long.at_fidelity(max_epochs=6, patience=2)
    assert derived.val_recall == short.val_recall
    assert derived.test_recall_at_best == short.test_recall_at_best
    assert derived.config == short.config
    with pytest.raises(ValueError, match="exceeds"):
        short.at_fidelity(max_epochs=12, patience=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_a_gpu_matches_the_cpu_within_seed_noise(tiny_dataset):
    arch = Architecture.from_string(BASE)
    config = TrainConfig(max_epochs=8, patience=3, batch_size=64)
    cpu = train_architecture(arch, TrainingContext(tiny_dataset, k=5), 0, config)
    gpu = train_architecture(arch, TrainingContext(tiny_dataset, k=5, device="cuda"), 0, config)
    assert gpu.ok and gpu.n_params == cpu.n_params
    assert cpu.device == "cpu" and gpu.device.startswith("cuda (")  # recorded with the result
    assert abs(gpu.val_recall_best - cpu.val_recall_best) < 0.1
