"""The surrogate model: distances, rank statistics, fitting a planted target, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from nasenv.space import CORE, FULL, SLOTS
from nasenv.surrogate import Surrogate, distances, encode, kendall_tau, spearman


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
    surrogate, report = Surrogate.fit(archs, scores, seconds, noise_std=0.002)
    assert report.kendall_tau > 0.7 and report.n == 200
    held_out = [a for a in CORE if a.to_string() not in {b.to_string() for b in archs}][:200]
    predicted, cost = surrogate.predict(held_out)
    assert kendall_tau(predicted, planted(held_out)) > 0.7
    assert kendall_tau(cost, np.array([a.depth for a in held_out], float)) > 0.5
    surrogate.save(tmp_path / "s.npz")
    again = Surrogate.load(tmp_path / "s.npz")
    np.testing.assert_allclose(again.predict(held_out[:5])[0], predicted[:5])


def test_samples_are_reproducible_per_seed_and_noisy_across_seeds():
    rng = np.random.default_rng(2)
    archs = [FULL.sample(rng) for _ in range(60)]
    surrogate, _ = Surrogate.fit(archs, rng.random(60) * 0.1, np.full(60, 20.0), 0.01, folds=3)
    target = FULL.sample(rng)
    assert surrogate.sample(target, 0) == surrogate.sample(target, 0)
    draws = np.array([surrogate.sample(target, seed)[0] for seed in range(300)])
    assert draws.std() == pytest.approx(0.01, rel=0.25)
