"""The version 2 surrogate: its ranking MLP, the blend with the ARD kernel ridge, file format 3
and its env id."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import nasenv  # noqa: F401  (registers the ids)
from nasenv import predictors
from nasenv.space import CORE, FULL, Architecture
from nasenv.surrogate import (
    RANK_BLEND,
    VERSION_MODELS,
    Surrogate,
    kendall_tau,
    load_surrogate,
    surrogate_filename,
)
from tests.test_surrogate import planted
from tests.test_surrogate_v1 import assert_answers_from, planted_data

FAST = {"seeds": 2, "max_epochs": 60, "patience": 10}
"""Fewer networks and epochs than shipped: the tests check behaviour, not the shipped quality."""


def _held_out(seen: list[Architecture], n: int = 200) -> list[Architecture]:
    names = {a.to_string() for a in seen}
    return [a for a in CORE if a.to_string() not in names][:n]


def test_the_ranking_networks_learn_an_order_reproducibly_and_leave_torch_alone():
    rng = np.random.default_rng(0)
    archs = [CORE[int(i)] for i in rng.choice(len(CORE), size=200, replace=False)]
    x, y = predictors.features(archs), planted(archs) + rng.normal(0, 0.002, len(archs))
    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    arrays = predictors.fit_rank_mlp(x, y, **FAST)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    again = predictors.fit_rank_mlp(x, y, **FAST)
    assert arrays.keys() == again.keys()
    assert all(np.array_equal(arrays[k], again[k]) for k in arrays)
    assert {k for k in arrays if k.endswith("_w")} == {
        f"mlp_{m}_{i}_w" for m in (0, 1) for i in (0, 1, 2)
    }
    held = _held_out(archs)
    predicted = predictors.mlp_predict(arrays, predictors.features(held))
    assert kendall_tau(predicted, planted(held)) > 0.7
    # the scale is kept: predictions are scores, not only an order
    assert abs(float(np.median(predicted)) - float(np.median(planted(held)))) < 0.01


@pytest.fixture(scope="module")
def fitted() -> tuple[Surrogate, list, np.ndarray]:
    archs, scores, targets = planted_data()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            predictors, "fit_rank_mlp", functools.partial(predictors.fit_rank_mlp, **FAST)
        )
        surrogate, _ = Surrogate.fit(archs, targets, noise_std=0.002, model="ard+rankmlp")
    return surrogate, archs, scores


def test_a_prediction_blends_the_kernel_and_the_ranking_networks(fitted, tmp_path):
    surrogate, archs, _ = fitted
    assert surrogate.model == "ard+rankmlp" and int(surrogate.arrays["format_version"]) == 3
    assert surrogate.meta["model"] == "ard+rankmlp"
    held = _held_out(archs)
    parts = surrogate.components(held)
    predicted = surrogate.predict(held)
    np.testing.assert_allclose(
        predicted, (1 - RANK_BLEND) * parts["ard"] + RANK_BLEND * parts["mlp"], rtol=1e-12
    )
    assert kendall_tau(predicted, planted(held)) > 0.7
    surrogate.save(tmp_path / "s.npz")
    loaded = Surrogate.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(loaded.predict(held), predicted)
    assert loaded.model == "ard+rankmlp"
    assert loaded.sample(held[0], 3) == pytest.approx(surrogate.sample(held[0], 3), rel=1e-12)
    drawn = surrogate.sample(held[0], 7, targets=("val_recall", "seconds"))
    assert drawn["seconds"] == pytest.approx(float(surrogate.predict(held[:1], "seconds")[0]))


def test_each_version_names_its_model():
    assert VERSION_MODELS == {0: "kernel", 1: "ard+mlp", 2: "ard+rankmlp", 3: "ard+rankmlp"}
    assert surrogate_filename("Books-20core", 2) == "books-20core-surrogate-v2.npz"


def test_the_v2_id_answers_from_the_version_2_surrogate():
    v1, v2 = load_surrogate(version=1), load_surrogate(version=2)
    assert (v1.model, v2.model) == ("ard+mlp", "ard+rankmlp")
    np.testing.assert_array_equal(v1.arrays["codes"], v2.arrays["codes"])
    assert_answers_from("RecNAS-Books-Surrogate-v2", v2, v1)
    sampled = [FULL.sample(np.random.default_rng(i)) for i in range(50)]
    assert kendall_tau(v1.predict(sampled), v2.predict(sampled)) > 0.6
