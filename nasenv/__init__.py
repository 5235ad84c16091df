"""RecNAS-Books: neural architecture search for GNN book recommenders as a Gymnasium environment.

Importing the package registers the environment ids:

* ``RecNAS-Books-v0`` - the benchmark environment: rewards from the shipped benchmark table;
* ``RecNAS-Books-Surrogate-v0`` - the full space, rewards predicted by the shipped surrogate model
  (fitted on the table plus trainings outside it) with seed noise;
* ``RecNAS-Books-Live-v0`` - always trains for real (``nondeterministic=True``: costs are measured
  wall seconds).

``gym.make("nasenv:RecNAS-Books-v0")`` imports the package itself.
"""

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

ENV_IDS = ("RecNAS-Books-v0", "RecNAS-Books-Surrogate-v0", "RecNAS-Books-Live-v0")

if "RecNAS-Books-v0" not in registry:
    register(id="RecNAS-Books-v0", entry_point="nasenv.env:RecNASEnv", kwargs={"backend": "table"})
if "RecNAS-Books-Surrogate-v0" not in registry:
    register(
        id="RecNAS-Books-Surrogate-v0",
        entry_point="nasenv.env:RecNASEnv",
        kwargs={"backend": "surrogate", "space": "full"},
    )
if "RecNAS-Books-Live-v0" not in registry:
    register(
        id="RecNAS-Books-Live-v0",
        entry_point="nasenv.env:RecNASEnv",
        kwargs={"backend": "live"},
        nondeterministic=True,
    )
