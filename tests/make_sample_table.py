"""Write a sample table the tests use: every architecture of ``TINY_SPACE`` trained for real
on a tiny synthetic dataset of ``conftest.py``, three seeds, through the same code as the
shipped tables (``BenchmarkTable.from_results``).

    python -m tests.make_sample_table            # tests/data/tiny.npz
    python -m tests.make_sample_table tiny-b     # tests/data/tiny-b.npz, a second task

Stored seconds are measured wall time, so a rebuilt table has other bytes and checksum.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from nasenv.data import write_checksums
from nasenv.table import BenchmarkTable
from nasenv.train import TrainConfig, TrainingContext, train_architecture
from tests.conftest import SAMPLE_BUDGET, SAMPLE_SEEDS, TINY_SPACE, make_tiny_dataset

OUT = Path(__file__).resolve().parent / "data"


TASKS = {"tiny": 0, "tiny-b": 1}  # name -> seed of the synthetic data


def build(name: str = "tiny") -> BenchmarkTable:
    dataset = dataclasses.replace(make_tiny_dataset(seed=TASKS[name]), name=name)
    context = TrainingContext(dataset, k=5)
    max_epochs, patience = SAMPLE_BUDGET
    config = TrainConfig(max_epochs=max_epochs, patience=patience, batch_size=64, threads=1)
    archs = [a.to_string() for a in TINY_SPACE]
    results = [
        train_architecture(arch, context, seed, config)
        for seed in SAMPLE_SEEDS
        for arch in TINY_SPACE
    ]
    meta = {
        "dataset": dataset.name,
        "dataset_sha256": dataset.sha256,
        "space": TINY_SPACE.name,
        "fidelity": {
            "name": "sample",
            "max_epochs": max_epochs,
            "patience": patience,
            "batch_size": config.batch_size,
        },
        "k": 5,
        "build": {"note": "tests/make_sample_table.py"},
    }
    return BenchmarkTable.from_results(results, archs, list(SAMPLE_SEEDS), meta)


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    table = build(name)
    table.save(OUT / f"{name}.npz")
    write_checksums(OUT)
    print(table, (OUT / f"{name}.npz").stat().st_size, "bytes")
