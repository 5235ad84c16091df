"""The adaptation recipe beyond its learning rate: pairs, epochs, LoRA rank and how pairs are drawn.

    python -m benchmarks.adapt_recipes                       # ~1.5 h on 2 cores; resumable
    python -m benchmarks.adapt_recipes --recipes full-20k    # some of the grid only

The shipped recipes (``nasenv/datasets/ADAPTED.json``) searched the learning rate only, with
10,000 pairs, one epoch and LoRA rank 8 fixed, and chose on validation item-kNN Recall@20. Each
recipe of :data:`RECIPES` here adapts all-MiniLM-L6-v2 on Books-20core's training interactions
(``nasenv.adapt``, the shipped learning rates) and is scored by both criteria on validation:

* item-kNN Recall@20 of the features as shipped (PCA to 64), as the shipped choice was made;
* a recommender's: LightGCN-3 with ID plus text inputs and the table's best text architecture,
  trained on the features with seeds 0 and 1 at the tabulation budget; their mean best
  validation Recall@20 is the criterion, with the tail third's validation recall (items by
  training interactions, as in ``benchmarks.adapted_encoders``) beside it.

The frozen and the two shipped feature sets are scored the same way, from their files. Test
Recall@20 is recorded and reported, never used to choose. Every record is appended to
``benchmarks/results/adapt_recipes.jsonl`` as it finishes (a rerun skips what is there); the
table goes to ``adapt_recipes.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.adapted_encoders import BUCKETS, item_buckets, test_hits
from benchmarks.common import add_results_option, write_results
from nasenv.allocator import keep_freed_memory
from nasenv.cli import LIGHTGCN_TEXT
from nasenv.data import (
    DATA_DIR,
    BooksDataset,
    adapted_provenance,
    get_spec,
    load_dataset,
    read_npz,
)
from nasenv.results import FIDELITIES
from nasenv.space import Architecture
from nasenv.table import load_table
from nasenv.train import TrainingContext, train_architecture

DATASET = "Books-20core"
SEEDS = (0, 1)
RECIPES: dict[str, dict[str, Any]] = {
    "full-20k": {"method": "full", "lr": 5e-5, "pairs": 20_000},
    "full-10k-2ep": {"method": "full", "lr": 5e-5, "epochs": 2},
    "full-10k-item": {"method": "full", "lr": 5e-5, "anchor": "item"},
    "full-5k": {"method": "full", "lr": 5e-5, "pairs": 5_000},
    "lora-20k": {"method": "lora", "lr": 5e-4, "pairs": 20_000},
    "lora-10k-item": {"method": "lora", "lr": 5e-4, "anchor": "item"},
    "lora-10k-r16": {"method": "lora", "lr": 5e-4, "lora_rank": 16},
}
"""Each recipe differs from its method's shipped one (10,000 pairs, one epoch, user-anchored
pairs, rank 8) in the keys given."""
DEFAULTS = {"pairs": 10_000, "epochs": 1, "anchor": "user", "lora_rank": 8, "batch_size": 64}
SHIPPED = ("frozen", "finetuned", "lora")
"""Feature sets read from the package: the frozen encoder and the shipped recipes."""


def architectures(dataset: str) -> list[str]:
    """LightGCN-3 with text inputs and the table's best text architecture (by validation)."""
    (best, _), *_ = load_table(dataset).top_k(1, where=lambda arch: arch.items != "id")
    return [LIGHTGCN_TEXT, best.to_string()]


def adapted_features(dataset: BooksDataset, recipe: dict[str, Any]) -> tuple[np.ndarray, dict]:
    """The recipe's features (PCA to the task's text dimensions, float16 as shipped) and the
    adaptation's facts."""
    from nasenv.adapt import adapt, cooccurrence_pairs, knn_recall
    from nasenv.prepare import item_texts, reduce_text

    spec = get_spec(dataset.name)
    texts = item_texts(read_npz(DATA_DIR / spec.files[0]))
    options = {**DEFAULTS, **recipe}
    pairs = cooccurrence_pairs(dataset.train, options["pairs"], 0, anchor=options["anchor"])
    adapted = adapt(
        texts, pairs, method=options["method"], epochs=options["epochs"], lr=options["lr"],
        batch_size=options["batch_size"], seed=0, lora_rank=options["lora_rank"],
    )  # fmt: skip
    features = reduce_text(adapted.vectors, spec.text_dim)[0]
    facts = {
        **options,
        "adapt_seconds": round(adapted.seconds, 1),
        "loss_last": round(float(np.mean(adapted.losses[-10:])), 4),
        "val_knn_recall": knn_recall(dataset, features),
    }
    return features, facts


def score(dataset: BooksDataset, features: np.ndarray, archs: list[str]) -> dict[str, Any]:
    """Validation (and, reported only, test) Recall@20 of ``archs`` on ``features``, seeds
    :data:`SEEDS`, with the validation and test recall of each popularity third."""
    context = TrainingContext(
        dataclasses.replace(dataset, item_text=np.asarray(features, dtype=np.float32))
    )
    buckets = item_buckets(dataset)
    runs = []
    best: dict[str, torch.Tensor] = {}  # the representations of a run's best epoch

    def keep(epoch: int, model: Any, user_repr: torch.Tensor, item_repr: torch.Tensor) -> None:
        best.update(user=user_repr, item=item_repr)

    for arch in archs:
        for seed in SEEDS:
            result = train_architecture(
                Architecture.from_string(arch), context, seed, FIDELITIES["tabulation"],
                on_best=keep,
            )  # fmt: skip
            thirds = {}
            for split, evaluator in (("val", context.val_eval), ("test", context.test_eval)):
                _, found = test_hits(evaluator, best["user"], best["item"])
                truth = getattr(dataset, split)
                hits = np.bincount(buckets[found[:, 1]], minlength=len(BUCKETS))
                thirds[split] = (hits / np.bincount(buckets[truth[:, 1]], minlength=3)).tolist()
            runs.append(
                {
                    "arch": arch,
                    "seed": seed,
                    "val_recall": result.val_recall_best,
                    "test_recall": result.test_recall,
                    "val_thirds": thirds["val"],
                    "test_thirds": thirds["test"],
                }
            )
            print(f"  {arch} seed {seed}: val {result.val_recall_best:.4f}", file=sys.stderr)
    return {
        "runs": runs,
        "val_recall": float(np.mean([r["val_recall"] for r in runs])),
        "val_tail": float(np.mean([r["val_thirds"][0] for r in runs])),
        "test_recall": float(np.mean([r["test_recall"] for r in runs])),
        "test_tail": float(np.mean([r["test_thirds"][0] for r in runs])),
    }


def markdown(records: list[dict[str, Any]], archs: list[str]) -> str:
    """The grid's table, best validation criterion first."""
    lines = [
        f"Books-20core; the recommender criterion is the mean best validation Recall@20 of "
        f"{' and '.join(f'`{a}`' for a in archs)} over seeds {list(SEEDS)} at the tabulation "
        "budget. Test columns are reported, not used to choose.",
        "",
        "| features | method | pairs | epochs | anchor | LoRA rank | adapt s | val kNN R@20 "
        "| val R@20 (recommenders) | val R@20, tail third | test R@20 | test R@20, tail third |",
        "| --- |" + " --- |" * 11,
    ]
    for r in sorted(records, key=lambda r: -r["val_recall"]):
        facts = [str(r.get(k, "-")) for k in ("method", "pairs", "epochs", "anchor", "lora_rank")]
        if r.get("method") != "lora":
            facts[-1] = "-"
        seconds = f"{r['adapt_seconds']:,.0f}" if r.get("adapt_seconds") else "-"
        lines.append(
            f"| {r['name']} | " + " | ".join(facts) + f" | {seconds} | {r['val_knn_recall']:.4f} "
            f"| {r['val_recall']:.4f} | {r['val_tail']:.4f} | {r['test_recall']:.4f} "
            f"| {r['test_tail']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.adapt_recipes", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    add_results_option(parser)
    args = parser.parse_args(argv)
    keep_freed_memory()
    from nasenv.adapt import knn_recall

    journal = Path(args.results) / "adapt_recipes.jsonl"
    done = {}
    if journal.exists():
        done = {r["name"]: r for r in map(json.loads, journal.read_text().splitlines())}
    archs = architectures(DATASET)
    todo = [(name, None) for name in SHIPPED] + [(name, RECIPES[name]) for name in args.recipes]
    for name, recipe in todo:
        if name in done:
            continue
        start = time.perf_counter()
        print(f"{name}: {recipe or 'shipped features'}", file=sys.stderr, flush=True)
        if recipe is None:
            dataset = load_dataset(DATASET, encoder=name)
            features = dataset.item_text
            facts: dict[str, Any] = {
                "val_knn_recall": knn_recall(dataset, features.astype(np.float64))
            }
            if name != "frozen":  # the shipped recipe, from its provenance
                recipe = adapted_provenance()[get_spec(DATASET).text_file(name)]["recipe"]
                facts |= {**DEFAULTS, **recipe, "adapt_seconds": None}
        else:
            dataset = load_dataset(DATASET)
            features, facts = adapted_features(dataset, recipe)
        record = {"name": name, **facts, **score(dataset, features, archs)}
        record["seconds"] = round(time.perf_counter() - start, 1)
        done[name] = record
        journal.parent.mkdir(parents=True, exist_ok=True)
        with open(journal, "a") as handle:
            handle.write(json.dumps(record) + "\n")
    records = [done[name] for name, _ in todo if name in done]
    write_results(
        args.results,
        "adapt_recipes",
        {"archs": archs, "records": records},
        markdown(records, archs),
    )


if __name__ == "__main__":
    main()
