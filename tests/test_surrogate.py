"""The surrogate model: distances, rank statistics, fitting a planted target, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from nasenv.space import CORE, FULL, SLOTS
from nasenv.surrogate import (
    Surrogate,
    SurrogateData,
    distances,
    encode,
    kendall_tau,
    spearman,
)


def test_distance_counts_differing_decisions():
    a = CORE[100]
    values = list(a.decisions())
    values[SLOTS.index(next(s for s in SLOTS if s.name == "loss"))] = (
        "bce" if a.loss == "bpr" else "bpr"
    )
    b = type(a).from_decisions(values)
    d = distances(encode([a, b]), encode([a, b]))
    assert d[0, 0] == 0 and d[0, 1] == d[1, 0] == 1


def test_rank_statistics_match_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.random(40), rng.random(40)
    y[:10] = x[:10]
    assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y).statistic)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)


def planted(archs) -> np.ndarray:
    """A score with structure: layer types, combine and item input matter, plus interactions."""
    out = []
    for a in archs:
        score = 0.05 + 0.01 * a.layers.count("lgconv") - 0.008 * a.layers.count("sage")
        score += 0.01 * (a.combine == "mean") + 0.012 * (a.items == "text") * (a.depth > 0)
        out.append(score)
    return np.array(out)


def test_fit_learns_a_planted_landscape_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    archs = [CORE[int(i)] for i in rng.choice(len(CORE), size=200, replace=False)]
    scores = planted(archs) + rng.normal(0, 0.002, len(archs))
    seconds = np.array([10.0 + 5 * a.depth for a in archs])
    targets = {"val_recall": scores, "log_seconds": np.log(seconds)}
    surrogate, reports = Surrogate.fit(archs, targets, noise_std=0.002)
    assert reports["val_recall"].kendall_tau > 0.7 and reports["val_recall"].n == 200
    held_out = [a for a in CORE if a.to_string() not in {b.to_string() for b in archs}][:200]
    predicted = surrogate.predict(held_out)
    cost = surrogate.predict(held_out, "log_seconds")
    assert kendall_tau(predicted, planted(held_out)) > 0.7
    assert kendall_tau(cost, np.array([a.depth for a in held_out], float)) > 0.5
    surrogate.save(tmp_path / "s.npz")
    again = Surrogate.load(tmp_path / "s.npz")
    np.testing.assert_allclose(again.predict(held_out[:5]), predicted[:5])
    with pytest.raises(ValueError, match="not fitted"):
        surrogate.predict(held_out[:1], "test_ndcg")


def test_samples_are_reproducible_per_seed_and_noisy_across_seeds():
    rng = np.random.default_rng(2)
    archs = [FULL.sample(rng) for _ in range(60)]
    surrogate, _ = Surrogate.fit(archs, {"val_recall": rng.random(60) * 0.1}, 0.01, folds=3)
    target = FULL.sample(rng)
    assert surrogate.sample(target, 0, ["val_recall"]) == surrogate.sample(
        target, 0, ["val_recall"]
    )
    draws = np.array(
        [surrogate.sample(target, seed, ["val_recall"])["val_recall"] for seed in range(300)]
    )
    assert draws.std() == pytest.approx(0.01, rel=0.25)


def test_a_surrogate_fitted_on_the_sample_table_drives_the_full_space_env():
    from pathlib import Path

    from nasenv.env import RecNASEnv
    from nasenv.evaluators import SurrogateEvaluator
    from nasenv.surrogate import holdout_quality, training_data
    from nasenv.table import BenchmarkTable

    table = BenchmarkTable.load(Path(__file__).resolve().parent / "data" / "tiny.npz")
    data = training_data(table)
    assert len(data) == len(table) and set(data.noise_std) == {"val_recall", "val_ndcg"}
    assert data.noise_std["val_recall"] > 0 and len(data.outside) == 0
    assert (data.seeds == len(table.seeds)).all()
    quality = holdout_quality(data)
    assert quality["held_out"] == 12 and -1 <= quality["kendall_tau"] <= 1
    surrogate, _ = data.fit(folds=3)
    assert surrogate.noise_std("val_ndcg") == data.noise_std["val_ndcg"]
    env = RecNASEnv(evaluator=SurrogateEvaluator(surrogate, "tiny"), space="full")
    rewards = []
    for _ in range(2):
        _, info = env.reset(seed=5)
        rng = np.random.default_rng(5)
        done = False
        while not done:
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
            _, reward, done, _, info = env.step(action)
        rewards.append(reward)
        assert 0 <= reward <= 1 and info["cost_seconds"] > 0
        assert info["source"] == "surrogate"  # the reward is a prediction, and says so
        # a prediction never under a measurement's key
        assert set(env.test_metrics()) == {"predicted_test_recall", "predicted_test_ndcg"}
    assert rewards[0] == rewards[1]


def _fitted(n: int = 40) -> Surrogate:
    rng = np.random.default_rng(3)
    archs = [FULL.sample(rng) for _ in range(n)]
    targets = {name: rng.random(n) * 0.1 for name in ("val_recall", "val_ndcg", "log_seconds")}
    return Surrogate.fit(archs, targets, 0.005, folds=3)[0]


def test_a_shipped_surrogate_is_verified_and_serves_the_surrogate_backend(tmp_path, monkeypatch):
    import nasenv.surrogate
    from nasenv.data import ChecksumError, write_checksums
    from nasenv.env import RecNASEnv
    from nasenv.surrogate import load_surrogate, surrogate_filename

    with pytest.raises(FileNotFoundError, match=r"fit_surrogate\.py"):
        load_surrogate("Books-20core", tmp_path)
    path = tmp_path / surrogate_filename("Books-20core")
    assert path.name == "books-20core-surrogate.npz"
    _fitted().save(path)
    write_checksums(tmp_path)
    loaded = load_surrogate("Books-20core", tmp_path)
    assert loaded.targets == ["val_recall", "val_ndcg", "log_seconds"]

    monkeypatch.setattr(nasenv.surrogate, "TABLE_DIR", tmp_path)
    env = RecNASEnv(backend="surrogate", space="full")
    _, info = env.reset(seed=0)
    terminated = False
    while not terminated:
        _, reward, terminated, _, info = env.step(int(np.flatnonzero(info["action_mask"])[-1]))
    assert 0.0 <= reward <= 1.0 and info["status"] == "ok"
    with pytest.raises(ValueError, match="'tabulation' budget only, not 'low'"):
        RecNASEnv(backend="surrogate", space="full", fidelity="low")

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=path.name):
        load_surrogate("Books-20core", tmp_path)


def _data(n: int = 30, outside: int = 0) -> SurrogateData:
    rng = np.random.default_rng(4)
    archs = [FULL.sample(rng) for _ in range(n)]
    seeds = np.where(np.arange(n) < n - outside, 3.0, 1.0)
    outside_indices = np.arange(n - outside, n)
    return SurrogateData(archs, {"val_recall": np.arange(n) / 100.0}, seeds, {}, outside_indices)


def test_holdout_draws_only_from_the_candidates_and_names_too_few():
    from nasenv.surrogate import holdout_predictions, holdout_quality

    data = _data()
    candidates = list(range(20, 30))
    _, measured = holdout_predictions(data, candidates=candidates)
    assert len(measured) == 2 and set(np.round(measured * 100).astype(int)) <= set(candidates)
    assert holdout_quality(data)["held_out"] == 6
    with pytest.raises(ValueError, match="at least 2 candidates to hold out, got 1"):
        holdout_predictions(data, candidates=[3])


def test_hyperparameters_can_be_scored_on_the_trainings_outside_the_table():
    import dataclasses

    assert _data(60, outside=20).fit()[1]["val_recall"].n == 60  # default: all score
    data = dataclasses.replace(_data(60, outside=20), select_on_outside=True)
    _, reports = data.fit()
    assert reports["val_recall"].n == 20
    _, reports = data.fit(np.arange(45))  # 5 outside trainings kept: enough for 5 folds
    assert reports["val_recall"].n == 5
    _, reports = data.fit(np.arange(44))  # 4: too few, so every architecture scores
    assert reports["val_recall"].n == 44


def test_more_seeds_mean_a_smaller_penalty_and_a_closer_fit():
    from nasenv.surrogate import _fit

    codes = encode([CORE[i] for i in range(4)])
    d = distances(codes, codes)
    y = np.array([0.1, 0.0, 0.05, 0.02])
    one, three = (_fit(d, y, 0.5, 0.1, np.full(4, n)) for n in (1.0, 3.0))
    residual = [np.abs(np.exp(-0.5 * d) @ a + y.mean() - y).sum() for a in (one, three)]
    assert residual[1] < residual[0]
    with pytest.raises(ValueError, match=r"one count >= 1 per architecture \(4\)"):
        Surrogate.fit([CORE[i] for i in range(4)], {"val_recall": y}, 0.0, seeds=[1, 1, 0, 1])


def test_extra_trainings_of_one_architecture_are_averaged_and_counted():
    from pathlib import Path

    from nasenv.results import FAILED_SCORE, TrainConfig, TrainResult
    from nasenv.surrogate import training_data
    from nasenv.table import BenchmarkTable

    tiny = BenchmarkTable.load(Path(__file__).resolve().parent / "data" / "tiny.npz")
    meta = np.array(json.dumps({**tiny.meta, "k": 20}))  # as if measured at the trainer's K
    table = BenchmarkTable({**tiny.arrays, "meta": meta})
    rng = np.random.default_rng(6)
    a, b = (FULL.sample(rng).to_string() for _ in range(2))

    def result(arch: str, seed: int, recall: float, status: str = "ok") -> TrainResult:
        curve = (recall / 2, recall) if status == "ok" else ()
        return TrainResult(
            arch, "tiny", seed, TrainConfig(), status, "", curve, curve, curve, curve,
            (1.0, 2.0) if status == "ok" else (), 10, 0.1,
            epoch_test_seconds=(0.25, 0.25) if status == "ok" else (),
        )  # fmt: skip

    with pytest.raises(ValueError, match="K=5 and trainings measure K=20"):
        training_data(tiny, [result(a, 0, 0.1)])
    data = training_data(table, [result(a, 0, 0.1), result(b, 0, 0.3), result(a, 1, 0.2)])
    assert len(data) == len(table) + 2 and list(data.outside) == [len(table), len(table) + 1]
    assert [str(x) for x in data.archs[-2:]] == [a, b]
    np.testing.assert_allclose(data.targets["val_recall"][-2:], [0.15, 0.3])
    np.testing.assert_allclose(data.seeds[-2:], [2, 1])
    # tiny.npz is of cost version 1: the extra runs' seconds are taken with their test passes
    assert table.cost_version == data.cost_version == 1
    assert data.targets["log_seconds"][-1] == pytest.approx(np.log(2.0 + 0.25))
    failed = training_data(table, [result(a, 0, 0.1, "failed")])
    assert failed.targets["val_recall"][-1] == FAILED_SCORE
    table_noise = data.noise_std["val_recall"]  # one pair: too few to measure noise outside
    twice = [FULL.sample(rng).to_string() for _ in range(10)]
    pairs = [result(x, s, 0.1 + (0.01 if s else 0.0) * (i % 2)) for i, x in enumerate(twice)
             for s in (0, 1)]  # fmt: skip
    replicated = training_data(table, pairs)
    expected = np.std(np.tile([0.0, -0.01], 5), ddof=1) / np.sqrt(2)
    assert replicated.noise_std["val_recall"] == pytest.approx(expected) != table_noise


def test_rank_statistics_handle_ties_as_scipy_does():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 4, size=30).astype(float)  # many ties
        y = x + rng.integers(0, 3, size=30)
        assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
        assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)
