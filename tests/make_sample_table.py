"""Write the sample table the tests use: every architecture of ``TINY_SPACE`` trained for real
on the tiny synthetic dataset of ``conftest.py``, three seeds, through the same code as the
shipped tables (``ShardStore`` journal -> ``BenchmarkTable.from_results``).

    python tests/make_sample_table.py
"""

from __future__ import annotations

from pathlib import Path

from nasenv.data import write_checksums
from nasenv.table import BenchmarkTable
from nasenv.train import TrainConfig, TrainingContext, train_architecture
from tests.conftest import SAMPLE_BUDGET, SAMPLE_SEEDS, TINY_SPACE, make_tiny_dataset

OUT = Path(__file__).resolve().parent / "data"


def build() -> BenchmarkTable:
    dataset = make_tiny_dataset()
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
    table = build()
    table.save(OUT / "tiny.npz")
    write_checksums(OUT)
    print(table, (OUT / "tiny.npz").stat().st_size, "bytes")
