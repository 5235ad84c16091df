"""The version 1 surrogate: its ARD kernel and MLP, the ensemble, file format 2 and its env id."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import nasenv  # noqa: F401  (registers the ids)
from nasenv import predictors
from nasenv.space import CORE, FULL, SLOTS, Architecture
from nasenv.surrogate import Surrogate, _split, encode, load_surrogate, surrogate_filename
from tests.test_surrogate import planted

LR = [slot.name for slot in SLOTS].index("lr")
REG = [slot.name for slot in SLOTS].index("reg")


def _sample(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [FULL.sample(rng) for _ in range(n)]


def test_slot_distances_sum_to_the_version_0_distance():
    from nasenv.surrogate import distances

    archs = _sample(30)
    split = _split(encode(archs))
    per_slot = predictors.slot_distances(split, split)
    assert per_slot.shape == (len(SLOTS), 30, 30)
    np.testing.assert_allclose(per_slot.sum(axis=0), distances(encode(archs), encode(archs)), 1e-6)
    a, b = archs[0], archs[1]
    for j, (x, y) in enumerate(zip(a.decisions(), b.decisions(), strict=True)):
        if SLOTS[j].name not in ("dim", "lr", "reg"):
            assert per_slot[j, 0, 1] == float(x != y)


def test_the_network_inputs_from_codes_are_the_one_hot_features():
    archs = _sample(40, seed=4)
    x = predictors.features(archs)
    assert x.shape == (40, 43)
    np.testing.assert_array_equal(predictors.features_from_codes(encode(archs)), x)


def test_the_likelihood_gradient_is_exact():
    archs = _sample(25, seed=3)
    split = _split(encode(archs))
    d = predictors.slot_distances(split, split).astype(np.float64)
    rng = np.random.default_rng(0)
    y, seeds = rng.normal(0, 0.01, 25), rng.integers(1, 4, 25).astype(float)
    theta = rng.normal(-1.0, 0.3, len(SLOTS) + 2)
    theta[-2:] = np.log([1e-4, 2e-5])
    _, gradient = predictors._negative_log_likelihood(theta, d, y, seeds)
    for k in (0, LR, len(SLOTS), len(SLOTS) + 1):
        step = np.zeros_like(theta)
        step[k] = 1e-6
        plus = predictors._negative_log_likelihood(theta + step, d, y, seeds)[0]
        minus = predictors._negative_log_likelihood(theta - step, d, y, seeds)[0]
        assert gradient[k] == pytest.approx((plus - minus) / 2e-6, rel=1e-4, abs=1e-6)


def test_the_ard_weights_find_the_slot_that_matters():
    archs = _sample(150, seed=1)
    lr = np.log2([a.decisions()[LR] for a in archs])
    y = 0.01 * lr + np.random.default_rng(0).normal(0, 0.001, len(archs))
    split = _split(encode(archs))
    weights, _, noise = predictors.fit_ard(
        predictors.slot_distances(split, split), y - y.mean(), np.ones(len(y))
    )
    assert weights.argmax() == LR and weights[LR] > 10 * weights[REG]
    assert np.sqrt(noise) == pytest.approx(0.001, rel=0.5)  # the planted noise, roughly


def test_the_saved_networks_predict_as_scikit_learn_does():
    from sklearn.neural_network import MLPRegressor

    archs = _sample(80, seed=2)
    x = predictors.features(archs)
    y = planted(archs)
    arrays = predictors.fit_mlp(x, y, seeds=2)
    expected = []
    for member in range(2):
        model = MLPRegressor(
            hidden_layer_sizes=predictors.MLP_HIDDEN, alpha=1e-3, max_iter=500,
            early_stopping=True, n_iter_no_change=20, random_state=member,
        )  # fmt: skip
        model.fit(x, (y - y.mean()) / y.std())
        expected.append(model.predict(x) * y.std() + y.mean())
    np.testing.assert_allclose(predictors.mlp_predict(arrays, x), np.mean(expected, 0), 1e-10)


def planted_data() -> tuple[list, np.ndarray, dict[str, np.ndarray]]:
    """200 core architectures, their noisy planted scores and the targets a fit takes (NDCG
    half the score, seconds growing with depth)."""
    rng = np.random.default_rng(1)
    archs = [CORE[int(i)] for i in rng.choice(len(CORE), size=200, replace=False)]
    scores = planted(archs) + rng.normal(0, 0.002, len(archs))
    targets = {
        "val_recall": scores,
        "val_ndcg": scores / 2,
        "log_seconds": np.log([10.0 + 5 * a.depth for a in archs]),
    }
    return archs, scores, targets


@pytest.fixture(scope="module")
def fitted() -> tuple[Surrogate, list, np.ndarray]:
    archs, scores, targets = planted_data()
    surrogate, _ = Surrogate.fit(archs, targets, noise_std=0.002, model="ard+mlp")
    return surrogate, archs, scores


def test_the_ensemble_learns_a_planted_landscape_and_round_trips(fitted, tmp_path):
    from nasenv.surrogate import kendall_tau

    surrogate, archs, _ = fitted
    assert surrogate.model == "ard+mlp" and int(surrogate.arrays["format_version"]) == 2
    seen = {a.to_string() for a in archs}
    held = [a for a in CORE if a.to_string() not in seen][:200]
    predicted = surrogate.predict(held)
    assert kendall_tau(predicted, planted(held)) > 0.7
    surrogate.save(tmp_path / "s.npz")
    loaded = Surrogate.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(loaded.predict(held), predicted)
    assert loaded.sample(held[0], 3) == surrogate.sample(held[0], 3)
    assert set(surrogate.meta["ard"]["val_recall"]["weights"]) == {s.name for s in SLOTS}


def test_a_prediction_is_the_mean_of_the_kernel_and_the_networks(fitted):
    surrogate, _, _ = fitted
    queries = _sample(20, seed=5)
    arrays = surrogate.arrays
    query = predictors.slot_distances(_split(encode(queries)), _split(arrays["codes"]))
    kernel = np.exp(-predictors.weighted(query, arrays["weights_val_recall"]))
    kernel = kernel @ arrays["alpha_val_recall"] + arrays["hyper_val_recall"][1]
    networks = {
        "mlp_" + k[len("mlp_val_recall_") :]: v
        for k, v in arrays.items()
        if k.startswith("mlp_val_recall_")
    }
    mlp = predictors.mlp_predict(networks, predictors.features(queries))
    np.testing.assert_allclose(surrogate.predict(queries), (kernel + mlp) / 2, rtol=1e-12)
    drawn = surrogate.sample(queries[0], 7, targets=("val_recall", "seconds"))
    assert drawn["seconds"] == pytest.approx(float(surrogate.predict(queries[:1], "seconds")[0]))


def test_the_components_are_the_two_halves_of_a_prediction(fitted):
    surrogate, _, _ = fitted
    queries = _sample(15, seed=6)
    parts = surrogate.components(queries)
    np.testing.assert_allclose((parts["ard"] + parts["mlp"]) / 2, surrogate.predict(queries))
    with pytest.raises(ValueError, match="a 'kernel' surrogate has no components"):
        load_surrogate().components(queries)


def test_unknown_models_versions_and_formats_are_refused(fitted):
    surrogate, archs, scores = fitted
    with pytest.raises(ValueError, match=r"unknown surrogate model 'gp'; allowed: \['kernel'"):
        Surrogate.fit(archs, {"val_recall": scores}, 0.002, model="gp")
    with pytest.raises(ValueError, match=r"unknown surrogate version 4; allowed: \[0, 1, 2, 3\]"):
        surrogate_filename("Books-20core", 4)
    with pytest.raises(ValueError, match=r"format 4 is not supported; allowed: \[1, 2, 3\]"):
        Surrogate({**surrogate.arrays, "format_version": np.array(4)})


def first_episode(env_id: str) -> tuple[float, dict, str]:
    """The final reward and info of an episode of ``env_id`` that always takes the first allowed
    action, and the model of the surrogate that answered."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(env_id)
    _, info = env.reset(seed=0)
    done, reward = False, 0.0
    while not done:
        action = int(np.flatnonzero(info["action_mask"])[0])
        _, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return float(reward), info, env.unwrapped.evaluator.surrogate.model


def test_the_v1_id_answers_from_the_version_1_surrogate_and_v0_from_version_0():
    assert surrogate_filename("Books-20core", 1) == "books-20core-surrogate-v1.npz"
    v0, v1 = load_surrogate(), load_surrogate(version=1)
    assert (v0.model, v1.model) == ("kernel", "ard+mlp")
    assert len(v1.arrays["codes"]) > len(v0.arrays["codes"])
    assert_answers_from("RecNAS-Books-Surrogate-v1", v1, v0)


def assert_answers_from(env_id: str, new, old) -> None:
    """An episode of ``env_id`` is rewarded by the surrogate ``new``, not by ``old``."""
    reward, info, model = first_episode(env_id)
    assert model == new.model
    assert 0.0 < reward < 0.2 and info["source"] == "surrogate"
    arch = Architecture.from_string(info["arch"])
    assert reward == new.sample(arch, info["seed"])["val_recall"]
    assert reward != old.sample(arch, info["seed"])["val_recall"]


def test_a_surrogate_version_needs_the_surrogate_back_end():
    from nasenv.env import RecNASEnv

    with pytest.raises(ValueError, match="surrogate_version=1 needs backend='surrogate'"):
        RecNASEnv(backend="table", surrogate_version=1)
    with pytest.raises(ValueError, match=r"unknown surrogate_version 5; allowed: \[0, 1, 2, 3\]"):
        RecNASEnv(backend="surrogate", space="full", surrogate_version=5)
