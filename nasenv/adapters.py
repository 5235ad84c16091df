"""The benchmark table behind the interfaces that HPO tools already call.

:class:`HPOBenchObjective` is the table in HPOBench's form: ``objective_function(configuration,
fidelity) -> {"function_value", "cost", "info"}`` and ``objective_function_test``, the plain
callable that HPOBench's benchmarks expose and that DEHB, SMAC-style loops or a hand-written
search call directly. A configuration is a mapping of slot names to choices
(:data:`nasenv.space.SLOTS`, e.g. ``{"layer1": "lgconv", "aggr1": "none", ..., "reg": 0.0001}``,
plus ``"encoder"`` for a ``core-v1`` table: :data:`nasenv.space.ENCODER_SLOTS`);
a fidelity is ``{"epochs": e, "patience": p}``, answered exactly from the stored curves. As in
HPOBench, ``function_value`` is minimised (``1 -`` validation Recall@20, or NDCG), ``cost`` is
what the evaluation costs (the table's stored seconds at that fidelity, of the table's
``cost_version``: 1 for the shipped tables, :data:`nasenv.results.COST_VERSION`), and test
metrics come only from ``objective_function_test``. Without a ``seed`` the answer is the mean
over the table's seeds.

:func:`syne_tune_blackbox` is the table as Syne Tune's ``BlackboxTabular``, for its simulated
back end (``UserBlackboxBackend``): N asynchronous workers on the stored seconds, under any of
Syne Tune's schedulers (ASHA, BOHB, REA, ...). Its hyperparameter ``arch`` is categorical over
the table's canonical architecture strings (``task``, the other, is constant): Syne Tune samples
hyperparameters independently, while the space is conditional (a stopped layer has no
aggregator). Structure-aware samplers therefore see a flat categorical there, which the Gymnasium
env does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nasenv.data import DEFAULT_DATASET
from nasenv.results import METRICS
from nasenv.space import FULL, SPACES, Architecture, Slot
from nasenv.table import BenchmarkTable, load_table

__all__ = ["SYNE_TUNE_METRICS", "HPOBenchObjective", "syne_tune_blackbox"]

SYNE_TUNE_METRICS = ("val_recall", "val_ndcg", "elapsed_time")
"""The objectives of :func:`syne_tune_blackbox`, per epoch: the best validation Recall@20 and
NDCG@20 so far, and the cumulative seconds (``elapsed_time``)."""


class HPOBenchObjective:
    """A benchmark table as an HPOBench-style objective.

    Args:
        table: a loaded table or the dataset whose shipped table to use.
        metric: ``"recall"`` or ``"ndcg"``; ``function_value`` is ``1 -`` its validation value.
    """

    def __init__(
        self, table: BenchmarkTable | str = DEFAULT_DATASET, metric: str = "recall"
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; allowed: {list(METRICS)}")
        self.table = load_table(table) if isinstance(table, str) else table
        self.metric = metric
        self.slots: tuple[Slot, ...] = SPACES.get(self.table.space_name, FULL).slots
        """The decisions of the table's space (13 with the ``encoder`` of a version 1 table)."""

    def get_configuration_space(self) -> dict[str, tuple[Any, ...]]:
        """Slot name -> its choices. Not every combination is in the table's space: a
        configuration outside it raises (see :meth:`objective_function`)."""
        return {slot.name: tuple(slot.choices) for slot in self.slots}

    def get_fidelity_space(self) -> dict[str, tuple[int, int]]:
        """Fidelity name -> ``(lowest, highest)``: epochs and patience up to the table's budget."""
        return {"epochs": (1, self.table.max_epochs), "patience": (1, self.table.patience)}

    def architecture(self, configuration: Mapping[str, Any]) -> Architecture:
        """The architecture a configuration names; ``ValueError`` naming missing or unknown
        keys, and the table's error for one it does not hold."""
        names = [slot.name for slot in self.slots]
        missing = [name for name in names if name not in configuration]
        unknown = sorted(set(configuration) - set(names))
        if missing or unknown:
            raise ValueError(
                f"a configuration needs exactly the slots {names}; missing {missing}, "
                f"unknown {unknown}"
            )
        arch = Architecture.from_decisions([configuration[name] for name in names], self.slots)
        self.table.index(arch)  # UnknownArchitectureError if the table does not hold it
        return arch

    def _fidelity(self, fidelity: Mapping[str, int] | None) -> tuple[int, int]:
        if fidelity is None:
            return self.table.max_epochs, self.table.patience
        unknown = sorted(set(fidelity) - {"epochs", "patience"})
        if unknown:
            raise ValueError(f"unknown fidelity keys {unknown}; allowed: ['epochs', 'patience']")
        budget = (
            int(fidelity.get("epochs", self.table.max_epochs)),
            int(fidelity.get("patience", self.table.patience)),
        )
        self.table.budget(budget)  # names the allowed range if out of it
        return budget

    def objective_function(
        self,
        configuration: Mapping[str, Any],
        fidelity: Mapping[str, int] | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Validation result of ``configuration`` at ``fidelity`` (default: the table's budget)
        with training ``seed`` (default: the mean over the table's seeds)."""
        arch, budget = self.architecture(configuration), self._fidelity(fidelity)
        record = self.table.query(arch, "mean" if seed is None else seed, budget)
        value = record.val_recall if self.metric == "recall" else record.val_ndcg
        return {
            "function_value": 1.0 - value,
            "cost": record.cost_seconds,
            "info": {
                "arch": record.arch,
                "val_recall": record.val_recall,
                "val_ndcg": record.val_ndcg,
                "epochs": record.epochs,
                "status": record.status,
                "fidelity": {"epochs": budget[0], "patience": budget[1]},
                "seed": seed,
                "cost_version": self.table.cost_version,
            },
        }

    def objective_function_test(
        self, configuration: Mapping[str, Any], seed: int | None = None
    ) -> dict[str, Any]:
        """Test result of ``configuration`` at the table's budget (for reporting only)."""
        arch = self.architecture(configuration)
        test = self.table.test_metrics(arch, "mean" if seed is None else seed)
        record = self.table.query(arch, "mean" if seed is None else seed)
        value = test["test_recall"] if self.metric == "recall" else test["test_ndcg"]
        return {
            "function_value": 1.0 - value,
            "cost": record.cost_seconds,
            "info": {**test, "arch": record.arch, "seed": seed},
        }


def syne_tune_blackbox(table: BenchmarkTable | str = DEFAULT_DATASET) -> Any:
    """The table as Syne Tune's ``BlackboxTabular`` (needs ``pip install syne-tune``).

    Fidelity ``epoch`` runs from 1 to the table's ``max_epochs``, and epoch ``e`` answers the
    budget ``(e, patience)`` exactly as the table does: :data:`SYNE_TUNE_METRICS` of the best
    validation epoch so far. After a run's early stop, later epochs repeat its last answer with
    no further seconds, since the training ended there. Seconds are the table's, of its
    ``cost_version``. Seeds are the table's seeds (Syne Tune draws one per trial).
    """
    import pandas as pd
    import syne_tune.config_space as sp
    from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular

    table = load_table(table) if isinstance(table, str) else table
    epochs = range(1, table.max_epochs + 1)
    values = np.zeros((len(table), len(table.seeds), len(epochs), len(SYNE_TUNE_METRICS)))
    for j, seed in enumerate(table.seeds):
        for e in epochs:
            budget = (e, table.patience)
            values[:, j, e - 1, 0] = table.scores("recall", seed, budget)
            values[:, j, e - 1, 1] = table.scores("ndcg", seed, budget)
            values[:, j, e - 1, 2] = table.costs(seed, budget)
    archs = list(table.arch_strings)
    # "task", constant, is there because Syne Tune's look-up needs two or more columns
    return BlackboxTabular(
        hyperparameters=pd.DataFrame({"arch": archs, "task": [table.dataset] * len(archs)}),
        configuration_space={"arch": sp.choice(archs), "task": sp.choice([table.dataset])},
        fidelity_space={"epoch": sp.randint(1, table.max_epochs)},
        objectives_evaluations=values,
        fidelity_values=np.array(list(epochs)),
        objectives_names=list(SYNE_TUNE_METRICS),
    )
