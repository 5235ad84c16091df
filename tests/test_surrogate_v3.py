"""The version 3 surrogate: version 2's model on more trainings, and its env id."""

from __future__ import annotations

import numpy as np

import nasenv  # noqa: F401  (registers the ids)
from nasenv.space import FULL
from nasenv.surrogate import VERSION_BUILDS, kendall_tau, load_surrogate, surrogate_filename
from tests.test_surrogate_v1 import assert_answers_from


def test_version_3_adds_the_third_draw_to_version_2s_builds():
    assert VERSION_BUILDS[3][: len(VERSION_BUILDS[2])] == VERSION_BUILDS[2]
    assert VERSION_BUILDS[3][-1] == "Books-20core-full-sample600-draw2-no-core"
    assert surrogate_filename("Books-20core", 3) == "books-20core-surrogate-v3.npz"


def test_the_v3_id_answers_from_the_version_3_surrogate():
    v2, v3 = load_surrogate(version=2), load_surrogate(version=3)
    assert (v2.model, v3.model) == ("ard+rankmlp", "ard+rankmlp")
    assert v3.meta["version"] == 3 and v3.meta["extra"] > v2.meta["extra"]
    assert len(v3.arrays["codes"]) > len(v2.arrays["codes"])
    assert_answers_from("RecNAS-Books-Surrogate-v3", v3, v2)
    sampled = [FULL.sample(np.random.default_rng(i)) for i in range(50)]
    assert kendall_tau(v2.predict(sampled), v3.predict(sampled)) > 0.6
