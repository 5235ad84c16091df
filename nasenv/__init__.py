"""RecNAS-Books: neural architecture search for GNN book recommenders as a Gymnasium environment.

Importing the package registers the environment ids:

* ``RecNAS-Books-v0`` - the benchmark environment and its leaderboard's protocol
  (:data:`nasenv.leaderboard.PROTOCOL`): rewards from the shipped benchmark table, each
  evaluation one training seed drawn from the env's ``np_random`` (``seed_policy="random"``);
* ``RecNAS-Books-Surrogate-v0`` - the full space, rewards predicted by the shipped surrogate model
  (fitted on the table plus trainings outside it) with seed noise;
* ``RecNAS-Books-Surrogate-v1`` - ``RecNAS-Books-Surrogate-v0`` answered by the version 1
  surrogate (``surrogate_version=1``): the mean of an ARD kernel ridge and an MLP, fitted on the
  table plus 2,656 trainings outside it (v0: 530), with the seed noise measured on 159
  architectures trained twice;
* ``RecNAS-Books-Surrogate-v2`` - the same data answered by the version 2 surrogate
  (``surrogate_version=2``): 0.3 of the ARD kernel ridge plus 0.7 of an MLP trained on a squared
  error and a pairwise ranking loss, which ranks held-out trainings better
  (``benchmarks/RESULTS.md``);
* ``RecNAS-Books-Surrogate-v3`` - the version 3 surrogate (``surrogate_version=3``): version 2's
  model fitted on 3,256 trainings outside the table (a third draw of 600 added);
* ``RecNAS-Books-Live-v0`` - always trains for real (``nondeterministic=True``: costs are measured
  wall seconds);
* ``RecNAS-Books-Live-v1`` - ``RecNAS-Books-Live-v0`` on the version 1 space ``core-v1``: a 13th
  decision after ``items``, the item text ``encoder`` (frozen MiniLM, or fine-tuned / LoRA-adapted
  to the task's training interactions, :data:`nasenv.space.ENCODERS`), with the adaptation's
  one-off cost in ``info["adapt_seconds"]``;
* ``RecNAS-Books-MO-v0`` - ``RecNAS-Books-v0`` with MO-Gymnasium's vector reward (quality,
  training cost, inference latency, parameters; :mod:`nasenv.multiobjective`), registered with
  ``disable_env_checker=True`` (Gymnasium's checker expects a scalar reward) and kept out of
  :data:`ENV_IDS`, the ids with scalar rewards.

Every id has ``max_episode_steps`` = its number of decisions (12; 13 for
``RecNAS-Books-Live-v1``). ``gym.make("nasenv:RecNAS-Books-v0")`` imports the package itself:
the form to use where another process makes the env (RLlib env runners, ``SubprocVecEnv`` with
a spawn start method).
"""

from typing import Any

from gymnasium.envs.registration import register, registry

from nasenv.leaderboard import PROTOCOL
from nasenv.space import ENCODER_SLOTS, SLOTS

__version__ = "0.3.0"

ENV_IDS = (
    "RecNAS-Books-v0",
    "RecNAS-Books-Surrogate-v0",
    "RecNAS-Books-Surrogate-v1",
    "RecNAS-Books-Surrogate-v2",
    "RecNAS-Books-Surrogate-v3",
    "RecNAS-Books-Live-v0",
    "RecNAS-Books-Live-v1",
)

_IDS: dict[str, dict[str, Any]] = {
    "RecNAS-Books-v0": {"kwargs": PROTOCOL.registration_kwargs()},
    "RecNAS-Books-Surrogate-v0": {"kwargs": {"backend": "surrogate", "space": "full"}},
    "RecNAS-Books-Surrogate-v1": {
        "kwargs": {"backend": "surrogate", "space": "full", "surrogate_version": 1}
    },
    "RecNAS-Books-Surrogate-v2": {
        "kwargs": {"backend": "surrogate", "space": "full", "surrogate_version": 2}
    },
    "RecNAS-Books-Surrogate-v3": {
        "kwargs": {"backend": "surrogate", "space": "full", "surrogate_version": 3}
    },
    "RecNAS-Books-Live-v0": {"kwargs": {"backend": "live"}, "nondeterministic": True},
    "RecNAS-Books-Live-v1": {
        "kwargs": {"backend": "live", "space": "core-v1"},
        "nondeterministic": True,
        "max_episode_steps": len(ENCODER_SLOTS),
    },
}
for _id, _options in _IDS.items():
    if _id not in registry:
        register(
            id=_id,
            entry_point="nasenv.env:RecNASEnv",
            **{"max_episode_steps": len(SLOTS), **_options},
        )
if "RecNAS-Books-MO-v0" not in registry:
    register(
        id="RecNAS-Books-MO-v0",
        entry_point="nasenv.multiobjective:RecNASMOEnv",
        max_episode_steps=len(SLOTS),
        disable_env_checker=True,
        kwargs=PROTOCOL.registration_kwargs(),
    )
