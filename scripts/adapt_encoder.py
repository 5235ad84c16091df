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
adapted features (``.npz``, float16, as a task's ``-text.npz``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasenv.adapt import METHODS, adapt, cooccurrence_pairs, knn_recall
from nasenv.cli import LIGHTGCN
from nasenv.data import DATA_DIR, BooksDataset, get_spec, load_dataset, read_npz, write_npz
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--check", type=int, default=0, help="seeds of the training check")
    parser.add_argument("--features-out", type=Path, help="write the adapted features here")
    args = parser.parse_args(argv)
    spec = get_spec(args.dataset)
    dataset = load_dataset(args.dataset)
    texts = item_texts(read_npz(DATA_DIR / spec.files[0]))
    start = time.perf_counter()
    frozen = minilm_embedder()(texts)
    frozen_seconds = time.perf_counter() - start
    pairs = cooccurrence_pairs(dataset.train, args.pairs, args.seed)
    adapted = adapt(
        texts, pairs, method=args.method, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, seed=args.seed,
    )  # fmt: skip
    record = {
        "dataset": args.dataset,
        "method": args.method,
        "pairs": args.pairs,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
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
    if args.features_out:
        write_npz(args.features_out, {"item_text": reduce_text(adapted.vectors, spec.text_dim)[0]})
    if args.check:
        record["check"] = check(dataset, frozen, adapted.vectors, spec.text_dim, args.check)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as handle:
        handle.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=1))


def check(
    dataset: BooksDataset, frozen: np.ndarray, adapted: np.ndarray, dim: int, seeds: int
) -> dict[str, Any]:
    """Validation and test Recall@20 of two text architectures on each feature set."""
    from nasenv.results import FIDELITIES
    from nasenv.space import Architecture
    from nasenv.table import load_table
    from nasenv.train import TrainingContext, train_architecture

    table = load_table(dataset.name)
    scores = table.scores("recall")
    text = [i for i in range(len(table)) if table.arch(i).items != "id"]
    best = table.arch(max(text, key=lambda i: scores[i])).to_string()
    lightgcn = LIGHTGCN.replace("items=id", "items=id+text")
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
