"""Fakes for tests: a :class:`~nasenv.results.TrainResult` without training (for tests of what
stores results), and a damaged copy of a shipped file (for tests of what verifies them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nasenv.results import FIDELITIES, TrainResult


def fake_result(
    arch: str = "a", seed: int = 0, recall: float = 0.25, seconds: float = 1.0, **fields: Any
) -> TrainResult:
    """A finished two-epoch run of ``arch`` that ends at validation Recall ``recall`` after
    ``seconds``; ``fields`` override any other field (e.g. ``dataset``, ``config``)."""
    values: dict[str, Any] = {
        "arch": arch,
        "dataset": "Books-20core",
        "seed": seed,
        "config": FIDELITIES["tabulation"],
        "status": "ok",
        "reason": "",
        "val_recall": (recall / 2, recall),
        "val_ndcg": (recall / 4, recall / 2),
        "test_recall_at_best": (0.1, 0.2),
        "test_ndcg_at_best": (0.05, 0.1),
        "epoch_seconds": (seconds / 2, seconds),
        "n_params": 100,
        "inference_ms": 0.5,
        "train_seconds": seconds,
    }
    return TrainResult(**{**values, **fields})


DAMAGES = ("flip", "truncate")
"""The ways :func:`damage_file` damages a file."""


def damage_file(path: Path, damage: str) -> None:
    """Flip every bit of the middle byte of ``path`` (``"flip"``) or cut it in half
    (``"truncate"``), in place."""
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        raise ValueError(f"unknown damage {damage!r}; allowed: {list(DAMAGES)}")
    path.write_bytes(bytes(data))
