"""Frozen against adapted item encoders: paired seeds at the converged budget, by item popularity.

    python -m benchmarks.adapted_encoders                    # every task with adapted features
    python -m benchmarks.adapted_encoders --tasks Books-20core --encoders frozen
    python -m benchmarks.adapted_encoders --quick            # low budget, 2 seeds, LightGCN-3 only

For each task, two architectures with text features are trained on each encoder's item features
(:data:`nasenv.data.ENCODERS`: frozen MiniLM, fine-tuned, LoRA; ``load_dataset(task,
encoder=...)``): the task's best text architecture in its shipped table (highest mean validation
Recall@20 over the table's seeds) and LightGCN-3 with ID plus text features. Seeds are fresh
(1000-1004, never in a table) and shared across encoders: a pair of runs starts from the same
initial weights and draws the same batches and negatives, so only the features differ. The
budget is the converged one (100 epochs, patience 10); test metrics are read at the best
validation epoch, and nothing here chooses anything by test.

Reported per task, architecture and encoder: validation and test Recall@20 and test NDCG@20
(mean ± sample std over seeds); each adapted encoder's test Recall@20 and NDCG@20 minus the frozen
one's, with a paired t-test over the seeds (and, for Recall@20, a Wilcoxon signed-rank test over
users, each user's test recall averaged over the seeds); and test Recall@20 by item
popularity: the items split into three equal groups by their number of training interactions
(tail, middle, head), each group's recall the share of its test interactions that were
retrieved.

Every finished training is appended to ``benchmarks/results/adapted_encoders.jsonl`` (a run
already there is not trained again: an interrupted run resumes); the summary goes to
``adapted_encoders.json`` and ``.md`` (``--results`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.common import add_results_option, write_results
from nasenv.allocator import keep_freed_memory
from nasenv.cli import LIGHTGCN_TEXT
from nasenv.data import ENCODERS, BooksDataset, adapted_encoders, load_dataset
from nasenv.evaluators import fresh_seeds
from nasenv.metrics import FullRankingEvaluator
from nasenv.results import FIDELITIES
from nasenv.space import Architecture
from nasenv.table import load_table
from nasenv.train import TrainingContext, train_architecture

BUCKETS = ("tail", "middle", "head")


def architectures(task: str) -> list[str]:
    """The task's best text architecture in its table (but LightGCN-3), then LightGCN-3 with
    ID + text."""
    (best, _), *_ = load_table(task).top_k(
        1, where=lambda arch: arch.items != "id" and arch.to_string() != LIGHTGCN_TEXT
    )
    return [best.to_string(), LIGHTGCN_TEXT]


def item_buckets(dataset: BooksDataset) -> np.ndarray:
    """Each item's popularity bucket (0 tail, 1 middle, 2 head): equal thirds of the items by
    training interactions, ties broken by item index."""
    counts = np.bincount(dataset.train[:, 1], minlength=dataset.n_items)
    order = np.lexsort((np.arange(dataset.n_items), counts))
    buckets = np.empty(dataset.n_items, dtype=np.int64)
    buckets[order] = np.arange(dataset.n_items) * len(BUCKETS) // dataset.n_items
    return buckets


def test_hits(
    evaluator: FullRankingEvaluator, user_repr: torch.Tensor, item_repr: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Per evaluated user, the number of test items in the top ``k``; and every retrieved
    ``(user, item)`` test pair (the evaluator's own ranking, chunk by chunk)."""
    hits, found = [], []
    with torch.no_grad():
        for users in evaluator.users.split(evaluator.chunk):
            scores = user_repr[users] @ item_repr.T
            scores.masked_fill_(evaluator.seen.rows(users), float("-inf"))
            top_k = scores.topk(evaluator.k, dim=1).indices
            hit = evaluator.truth.rows(users).gather(1, top_k)
            hits.append(hit.sum(1))
            rows, cols = torch.nonzero(hit, as_tuple=True)
            found.append(torch.stack([users[rows], top_k[rows, cols]], 1))
    return torch.cat(hits).numpy(), torch.cat(found).numpy()


def run(
    context: TrainingContext, arch: str, seed: int, fidelity: str, buckets: np.ndarray
) -> dict[str, Any]:
    """Train once; the record of the journal (with per-user hits and hits by bucket)."""
    best: dict[str, torch.Tensor] = {}

    def keep(epoch: int, model: Any, user_repr: torch.Tensor, item_repr: torch.Tensor) -> None:
        best.update(user=user_repr, item=item_repr)

    result = train_architecture(
        Architecture.from_string(arch), context, seed, FIDELITIES[fidelity], on_best=keep
    )
    evaluator = context.test_eval
    hits, found = test_hits(evaluator, best["user"], best["item"])
    n_true = evaluator.n_true[evaluator.users].numpy()
    recall = float(np.mean(hits / n_true))
    if abs(recall - result.test_recall) > 1e-5:  # the same ranking as the trainer's test pass
        raise RuntimeError(f"per-user recall {recall} differs from {result.test_recall}")
    test = context.dataset.test
    return {
        "arch": arch,
        "seed": seed,
        "fidelity": fidelity,
        "status": result.status,
        "val_recall": result.val_recall_best,
        "test_recall": result.test_recall,
        "test_ndcg": result.test_ndcg,
        "epochs": len(result.val_recall),
        "seconds": round(result.train_seconds, 1),
        "user_hits": hits.tolist(),
        "bucket_hits": np.bincount(buckets[found[:, 1]], minlength=len(BUCKETS)).tolist(),
        "bucket_pairs": np.bincount(buckets[test[:, 1]], minlength=len(BUCKETS)).tolist(),
    }


def load_journal(path: Path) -> dict[tuple, dict[str, Any]]:
    """The finished runs, keyed by ``(task, encoder, arch, seed, fidelity)``."""
    runs: dict[tuple, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                runs[_key(record)] = record
    return runs


def _key(record: dict[str, Any]) -> tuple:
    return tuple(record[k] for k in ("task", "encoder", "arch", "seed", "fidelity"))


def summarise(runs: list[dict[str, Any]], n_true: dict[str, np.ndarray]) -> dict[str, Any]:
    """Means, paired differences to frozen with their tests, and recall by bucket."""
    from scipy import stats

    out: dict[str, Any] = {}
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in runs:
        groups.setdefault((record["task"], record["arch"], record["encoder"]), []).append(record)
    order = {encoder: i for i, encoder in enumerate(ENCODERS)}
    for (task, arch, encoder), records in sorted(
        groups.items(), key=lambda g: (g[0][:2], order[g[0][2]])
    ):
        records.sort(key=lambda r: r["seed"])
        row: dict[str, Any] = {"seeds": [r["seed"] for r in records]}
        for metric in ("val_recall", "test_recall", "test_ndcg", "seconds", "epochs"):
            values = [r[metric] for r in records]
            row[metric] = _mean_std(values)
        hits = np.sum([r["bucket_hits"] for r in records], axis=0)
        pairs = np.sum([r["bucket_pairs"] for r in records], axis=0)
        row["bucket_recall"] = dict(zip(BUCKETS, (hits / pairs).tolist(), strict=True))
        frozen = groups.get((task, arch, "frozen"))
        if encoder != "frozen" and frozen:
            by_seed = {r["seed"]: r for r in frozen}
            paired = [(by_seed[r["seed"]], r) for r in records if r["seed"] in by_seed]
            row["paired_seeds"] = len(paired)
            for metric, name in (("test_recall", "p_seeds"), ("test_ndcg", "p_seeds_ndcg")):
                after = np.array([b[metric] for _, b in paired])
                before = np.array([a[metric] for a, _ in paired])
                row[f"{metric}_diff"] = _mean_std(after - before)
                if len(paired) >= 2:
                    row[name] = float(stats.ttest_rel(after, before).pvalue)
            truth = n_true[task]
            user_a = np.mean([np.array(a["user_hits"]) / truth for a, _ in paired], axis=0)
            user_b = np.mean([np.array(b["user_hits"]) / truth for _, b in paired], axis=0)
            row["p_users"] = float(stats.wilcoxon(user_b, user_a).pvalue)
        out.setdefault(task, {}).setdefault(arch, {})[encoder] = row
    return out


def _mean_std(values: Any) -> list[float]:
    """Mean and sample standard deviation (0 for one value), as the other benchmarks report."""
    values = np.asarray(values, dtype=np.float64)
    return [float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0]


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "| task | architecture | encoder | val Recall@20 | test Recall@20 | test NDCG@20 | "
        "test R@20 - frozen | p (seeds) | p (users) | test NDCG@20 - frozen | p (seeds) | "
        "tail | middle | head |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task, archs in summary.items():
        for arch, encoders in archs.items():
            for encoder, row in encoders.items():
                cells = [task, f"`{arch}`", f"{encoder} ({len(row['seeds'])})"]
                for metric in ("val_recall", "test_recall", "test_ndcg"):
                    cells.append("{:.4f} ± {:.4f}".format(*row[metric]))
                if "test_recall_diff" in row:
                    cells.append("{:+.4f} ± {:.4f}".format(*row["test_recall_diff"]))
                    cells.append(f"{row.get('p_seeds', float('nan')):.2g}")
                    cells.append(f"{row['p_users']:.2g}")
                    cells.append("{:+.4f} ± {:.4f}".format(*row["test_ndcg_diff"]))
                    cells.append(f"{row.get('p_seeds_ndcg', float('nan')):.2g}")
                else:
                    cells += ["-"] * 5
                cells += [f"{row['bucket_recall'][b]:.4f}" for b in BUCKETS]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", help="default: every task with adapted features")
    parser.add_argument("--encoders", nargs="+", help="default: every one the task has")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--fidelity", default="converged", choices=sorted(FIDELITIES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help="low budget, 2 seeds, one task, LightGCN-3 only"
    )
    add_results_option(parser)
    args = parser.parse_args(argv)
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.fidelity, args.seeds = "low", 2
        args.tasks = args.tasks or ["Books-Canada-5core"]
    results = args.results
    stem = "adapted_encoders-quick" if args.quick else "adapted_encoders"
    journal_path = results / f"{stem}.jsonl"
    journal = load_journal(journal_path)
    from nasenv.data import DATASETS

    tasks = args.tasks or [t for t in DATASETS if len(adapted_encoders(t)) > 1]
    seeds = fresh_seeds(args.seeds)
    n_true: dict[str, np.ndarray] = {}
    for task in tasks:
        encoders = args.encoders or adapted_encoders(task)
        archs = [LIGHTGCN_TEXT] if args.quick else architectures(task)
        for encoder in encoders:
            dataset = load_dataset(task, encoder=encoder)
            context = TrainingContext(dataset)
            n_true[task] = context.test_eval.n_true[context.test_eval.users].numpy()
            buckets = item_buckets(dataset)
            todo = [(a, s) for a in archs for s in seeds]
            todo = [(a, s) for a, s in todo if (task, encoder, a, s, args.fidelity) not in journal]
            for arch, seed in tqdm(todo, desc=f"{task} {encoder}", file=sys.stderr):
                record = run(context, arch, seed, args.fidelity, buckets)
                record = {"task": task, "encoder": encoder, **record}
                journal[_key(record)] = record
                journal_path.parent.mkdir(parents=True, exist_ok=True)
                with open(journal_path, "a") as handle:
                    handle.write(json.dumps(record) + "\n")
    runs = [r for r in journal.values() if r["task"] in n_true and r["fidelity"] == args.fidelity]
    summary = summarise(runs, n_true)
    text = markdown(summary)
    write_results(results, stem, {"fidelity": args.fidelity, "summary": summary}, text)


if __name__ == "__main__":
    main()
