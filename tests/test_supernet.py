"""The one-shot supernet and searchers: a one-hot (or sampled single) path computes exactly the
architecture's model, every searcher derives a core architecture, deterministically for a seed,
selecting on validation only, and nothing outside the searched space is ever returned."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from agents.oneshot import DARTS, ENAS, GDAS, SEARCHERS, SPOS, OneShotResult
from nasenv.data import BooksDataset
from nasenv.space import COMBINES, CORE, STOP, Architecture, SearchSpace
from nasenv.supernet import GROUPS, Supernet
from nasenv.train import TrainingContext, gather_rows, l2_penalty, pair_loss
from tests.test_agent_defaults import documented, leading_value

WIDE = SearchSpace(
    "core-all-combines",
    {
        **{f"layer{d}": (STOP, "lgconv", "gcn", "sage") for d in (1, 2, 3)},
        **{f"aggr{d}": ("none", "mean") for d in (1, 2, 3)},
        "combine": COMBINES,
        "dim": (64,),
        "lr": (0.02,),
        "reg": (1e-4,),
    },
)
"""The core with every combination, ``sum`` and ``weighted`` included."""

ARCHS = [
    "layers=none,combine=last,dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001",
    "layers=sage:mean,combine=last,dim=64,items=text,loss=bce,lr=0.02,reg=0.0001",
    "layers=gcn-sage:mean,combine=concat,dim=64,items=id+text,loss=bpr,lr=0.02,reg=0.0001",
    "layers=lgconv-gcn-sage:mean,combine=weighted,dim=64,items=id,loss=bce,lr=0.02,reg=0.0001",
    "layers=lgconv-lgconv,combine=mean,dim=64,items=text,loss=bpr,lr=0.02,reg=0.0001",
    "layers=gcn,combine=sum,dim=64,items=id+text,loss=bce,lr=0.02,reg=0.0001",
]


class RefusedTest:
    """A test evaluator that fails the test when a search asks it anything."""

    def __call__(self, *args: object) -> None:
        raise AssertionError("a one-shot search read the test split")


@pytest.fixture(scope="module")
def context(tiny_dataset: BooksDataset) -> TrainingContext:
    context = TrainingContext(tiny_dataset, k=5)
    context.test_eval = RefusedTest()  # type: ignore[assignment]
    return context


@pytest.fixture(scope="module")
def trained(context: TrainingContext) -> Supernet:
    """A supernet over WIDE after a few mixed steps, its combination logits moved off zero."""
    net = Supernet(context, WIDE, seed=3)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    users, items = context.train[:, 0], context.train[:, 1]
    for _ in range(3):
        optimizer.zero_grad()
        net.loss(net.mixed(), users, items, context.sampler(users, generator)).backward()
        optimizer.step()
    with torch.no_grad():
        for logits in net.layer_logits:
            logits.normal_(generator=generator)
    return net


@pytest.mark.parametrize("text", ARCHS)
def test_one_hot_forward_equals_the_extracted_recommender(trained, text):
    arch = Architecture.from_string(text)
    users, items = trained(trained.one_hot(arch))
    model = trained.extract(arch)
    expected_users, expected_items = model()
    assert users.shape == (trained.graph.n_users, model.out_dim)
    torch.testing.assert_close(users, expected_users, rtol=0, atol=0)
    torch.testing.assert_close(items, expected_items, rtol=0, atol=0)


@pytest.mark.parametrize("text", ARCHS)
def test_one_hot_batch_loss_is_the_trainers(trained, context, text):
    arch = Architecture.from_string(text)
    users, items = context.train[:50, 0], context.train[:50, 1]
    negatives = context.sampler(users, torch.Generator().manual_seed(1))
    loss = trained.loss(trained.one_hot(arch), users, items, negatives)
    final, x0 = trained.extract(arch).node_representations()  # as nasenv.train._train
    nodes = torch.cat([users, context.graph.n_users + items, context.graph.n_users + negatives])
    u, i, j = gather_rows(final, nodes).chunk(3)
    penalty = l2_penalty(x0, nodes, len(users))
    expected = pair_loss(arch.loss, (u * i).sum(1), (u * j).sum(1)) + arch.reg * penalty
    torch.testing.assert_close(loss, expected)


def test_a_gumbel_sample_is_its_single_path_with_gradients_for_its_alphas(trained, context):
    weights, arch = trained.gumbel(1.0, torch.Generator().manual_seed(5))
    for vector in (*weights.ops, weights.combine, weights.items, weights.loss):
        assert set(vector.detach().tolist()) <= {0.0, 1.0}
    for got, want in zip(trained(weights), trained(trained.one_hot(arch)), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    trained.zero_grad()
    users, items = context.train[:50, 0], context.train[:50, 1]
    trained.loss(weights, users, items, items.flip(0)).backward()
    assert trained.alphas["layer1"].grad is not None and trained.alphas["layer1"].grad.abs().sum()
    assert trained.alphas["loss"].grad is not None and trained.alphas["loss"].grad.abs().sum()
    trained.zero_grad()


def test_a_stop_at_layer_one_removes_every_deeper_layer_from_the_mixture(context):
    net = Supernet(context, WIDE, seed=0)
    with torch.no_grad():
        net.alphas["layer1"][0] = 60.0  # stop: depth 0 gets all but e^-60 of the weight
        net.alphas["items"][1] = 60.0  # text
    users, items = net(net.mixed())
    arch = Architecture.from_string(ARCHS[0].replace("items=id", "items=text"))
    expected_users, expected_items = net(net.one_hot(arch))
    torch.testing.assert_close(users @ items.T, expected_users @ expected_items.T)


def test_mixed_depth_weights_sum_to_one(trained):
    _, depths = trained._hidden(trained.mixed())
    assert len(depths) == 4 and float(sum(depths).detach()) == pytest.approx(1.0)


def test_inherited_scores_are_the_extracted_models_and_ignore_the_loss(trained, context):
    archs = [Architecture.from_string(t) for t in ARCHS]
    scores = trained.scores(archs)
    for arch, score in zip(archs, scores, strict=True):
        assert score == context.val_eval(*trained.extract(arch)()).recall
    twins = [dataclasses.replace(a, loss="bce" if a.loss == "bpr" else "bpr") for a in archs]
    assert np.array_equal(trained.scores(twins), scores)
    with pytest.raises(ValueError, match="unknown split 'train'"):
        trained.score(archs[0], split="train")


def test_an_architecture_outside_the_space_is_an_error_that_names_it(context, trained):
    net = Supernet(context, CORE, seed=0)
    outside = Architecture.from_string(ARCHS[3])  # combine=weighted: not in the core
    for call in (net.extract, net.one_hot, net.score, net.indices):
        with pytest.raises(ValueError, match=r"combine=weighted.*not in the core space"):
            call(outside)
    with pytest.raises(ValueError, match=r"layers=gat.*not in the core space"):
        OneShotResult(
            "darts",
            "tiny",
            0,
            Architecture.from_string(ARCHS[1].replace("sage:mean", "gat")),
            1.0,
            (),
            {},
        )
    with pytest.raises(ValueError, match=r"shares one dim: .* allows \[16, 64\]"):
        Supernet(
            context,
            SearchSpace(
                "two-dims",
                {
                    **{
                        k: CORE.allowed[i]
                        for i, k in enumerate(
                            ("layer1", "aggr1", "layer2", "aggr2", "layer3", "aggr3", "combine")
                        )
                    },
                    "dim": (16, 64),
                    "lr": (0.02,),
                    "reg": (1e-4,),
                },
            ),
        )


QUICK = {"epochs": 2, "batch_size": 64}


def deterministic_part(result: OneShotResult) -> tuple[object, ...]:
    """Everything but the wall-clock seconds."""
    history = [dataclasses.replace(r, seconds=0.0) for r in result.history]
    return result.arch, history


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_every_searcher_derives_a_core_architecture_deterministically(name, context):
    searcher = SEARCHERS[name](**QUICK)
    first = searcher.search(context, seed=7)
    assert first.arch in CORE and first.searcher == name and first.wall_seconds > 0
    assert [r.epoch for r in first.history] == [1, 2]
    assert all(math.isfinite(r.train_loss) for r in first.history)
    if name in ("darts", "gdas"):
        last = first.history[-1]
        assert set(last.probabilities) == set(GROUPS) and last.derived == str(first.arch)
        assert first.supernet is not None
        assert last.val_recall == first.supernet.score(first.arch)
    again = searcher.search(context, seed=7)
    assert deterministic_part(again) == deterministic_part(first)
    json_ready = first.to_dict()
    assert json_ready["arch"] == str(first.arch) and len(json_ready["history"]) == 2


def test_a_search_leaves_the_global_generator_and_thread_count_alone(context):
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        state = torch.get_rng_state()
        GDAS(epochs=1, batch_size=64).search(context, seed=0, threads=1)
        assert torch.equal(torch.get_rng_state(), state)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_gradient_searches_move_their_alphas_with_a_seed_of_their_own(context):
    a, b = (DARTS(**QUICK).search(context, seed=s) for s in (0, 1))
    assert a.history[-1].probabilities != b.history[-1].probabilities
    start = Supernet(context, CORE, seed=0).probabilities()
    assert a.history[-1].probabilities != start


def test_spos_ranks_every_core_architecture_with_inherited_weights(context):
    result = SPOS(**QUICK).search(context, seed=0)
    assert result.inherited_scores is not None and len(result.inherited_scores) == len(CORE)
    assert result.supernet is not None
    assert np.array_equal(result.inherited_scores, result.supernet.scores(CORE))
    assert result.supernet.score(result.arch) == result.inherited_scores.max()
    sampled = SPOS(**QUICK, n_candidates=5).search(context, seed=0)
    assert sampled.inherited_scores is None and sampled.arch in CORE


def test_bad_hyperparameters_are_errors_naming_them():
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        DARTS(epochs=0)
    with pytest.raises(ValueError, match="tau_min <= tau_max"):
        GDAS(tau_min=1.0, tau_max=0.5)
    with pytest.raises(ValueError, match="reward_folds must be >= 1"):
        ENAS(reward_folds=0)


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_every_hyperparameter_is_documented_with_its_default(name):
    cls = SEARCHERS[name]
    entries = documented(cls)
    for field in dataclasses.fields(cls):
        assert field.name in entries, f"{name}: {field.name} is not documented"
        assert leading_value(entries[field.name]) == field.default, (name, field.name)
