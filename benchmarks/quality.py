"""Quality of the searched architectures against hand-designed recommenders, trained the same way.

    python -m benchmarks.quality              # tune lr, then 5 fresh seeds each (~1.5 h, 2 cores)
    python -m benchmarks.quality --quick      # low fidelity, 2 seeds, no tuning (~2 min)
    python -m benchmarks.quality --archs "layers=..."   # other searched architectures
    python -m benchmarks.quality --dry-run    # the models and architectures, nothing trained
    python -m benchmarks.quality --sample     # --quick on nasenv.testing's tiny dataset (seconds)

Models:

* **popularity**: every user gets the most-interacted training items (no training, no seed);
* **MF-BPR**: ID embeddings, no message passing, BPR;
* **LightGCN**: three LightGCN layers, mean of the layer outputs, BPR (He et al., 2020);
* **GCN-3 concat**: three GCN layers with the layer outputs concatenated, the NGCF-style design
  that the space can express (NGCF's element-wise interaction term is not in it);
* **LightGCN + text**: LightGCN on ID plus MiniLM text item input (``items=id+text``), the
  input a searched design may use;
* **searched**: by default the architecture that the most runs of ``benchmarks.run_agents``
  (full mode) returned as their best by validation, and, if it uses text features, the same
  design on ID features alone (**searched, items=id**): together with LightGCN + text they
  separate the gain of the features from the gain of the search.

Every trained model gets the same pipeline: the learning rate is chosen among the space's
``lr`` choices by validation Recall@20 of one tuning run (seed 500) at the tabulation budget, then
the chosen design is trained with 5 fresh seeds (1000-1004) at the converged budget (100 epochs,
patience 10), and test Recall@20 / NDCG@20 are read at the best validation epoch. The test split
never selects anything. Runs are journalled in ``benchmarks/results/quality.jsonl`` (resumable).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import statistics
from pathlib import Path

import torch
from tqdm import tqdm

from benchmarks.common import RESULTS, add_plot_option, add_results_option
from nasenv.data import DEFAULT_DATASET, load_dataset, sha256_of
from nasenv.evaluators import fresh_seeds
from nasenv.results import FIDELITIES, TrainResult
from nasenv.space import SLOT_INDEX, SLOTS, Architecture
from nasenv.table import TABLE_DIR, table_filename
from nasenv.train import TrainingContext, train_architecture

TUNING_SEED = 500
FRESH_SEEDS = fresh_seeds(5)
_ID_BPR = "dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001"
HAND_DESIGNED = {
    "MF-BPR": f"layers=none,combine=last,{_ID_BPR}",
    "LightGCN": f"layers=lgconv-lgconv-lgconv,combine=mean,{_ID_BPR}",
    "GCN-3 concat": f"layers=gcn-gcn-gcn,combine=concat,{_ID_BPR}",
    "LightGCN + text": "layers=lgconv-lgconv-lgconv,combine=mean,dim=64,items=id+text,loss=bpr,"
    "lr=0.02,reg=0.0001",
}
"""Hand-designed baselines; ``LightGCN + text`` is LightGCN on the same item input as a searched
design with text features, so that the features' gain and the search's can be told apart."""


def searched_architectures(path: Path, table_sha256: str | None = None) -> list[str]:
    """The architecture most runs in ``path`` returned as best (ties: first seen), counting only
    the runs on the table with ``table_sha256`` if given."""
    if not path.exists():
        raise SystemExit(
            f"{path} is missing: run python -m benchmarks.run_agents first, or pass --archs"
        )
    votes: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if table_sha256 is None or record.get("table_sha256") == table_sha256:
            votes[max(record["history"], key=lambda trial: trial["reward"])["arch"]] += 1
    if not votes:
        raise SystemExit(
            f"{path} has no run on the shipped table: run python -m benchmarks.run_agents"
        )
    return [votes.most_common(1)[0][0]]


class Journal:
    """Finished trainings keyed by (arch, seed, fidelity), appended as JSON lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs: dict[tuple[str, int, str], TrainResult] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                record = json.loads(line)
                key = (record["result"]["arch"], record["seed"], record["fidelity"])
                self.runs[key] = TrainResult.from_dict(record["result"])

    def train(self, arch: str, seed: int, fidelity: str, ctx: TrainingContext) -> TrainResult:
        key = (arch, seed, fidelity)
        if key not in self.runs:
            config = FIDELITIES[fidelity]
            result = train_architecture(Architecture.from_string(arch), ctx, seed, config)
            record = {"seed": seed, "fidelity": fidelity, "result": result.to_dict()}
            with open(self.path, "a") as out:
                out.write(json.dumps(record) + "\n")
            self.runs[key] = result
        return self.runs[key]


def with_lr(arch: str, lr: float) -> str:
    return dataclasses.replace(Architecture.from_string(arch), lr=lr).to_string()


def metrics(result: TrainResult) -> dict[str, float]:
    return {
        "val_recall": result.val_recall_best,
        "val_ndcg": result.val_ndcg_best,
        "test_recall": result.test_recall,
        "test_ndcg": result.test_ndcg,
    }


def popularity(ctx: TrainingContext) -> dict[str, float]:
    """Validation and test metrics of ranking items by their number of training interactions."""
    counts = torch.bincount(ctx.train[:, 1], minlength=ctx.dataset.n_items).float()
    users = torch.ones(ctx.dataset.n_users, 1)
    val, test = ctx.val_eval(users, counts[:, None]), ctx.test_eval(users, counts[:, None])
    return {"val_recall": val.recall, "val_ndcg": val.ndcg, "test_recall": test.recall,
            "test_ndcg": test.ndcg}  # fmt: skip


def mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {std:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument(
        "--archs",
        nargs="*",
        help="searched architectures (default: see above; the option alone: hand-designed only)",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        help="run_agents journal to take the searched architecture from (default: that of "
        "its full mode, or of its quick mode with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="low fidelity, 2 seeds, no tuning")
    parser.add_argument(
        "--sample",
        action="store_true",
        help="--quick on the tiny synthetic dataset of nasenv.testing, hand-designed models and "
        "--archs only: a smoke run of seconds",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the models and architectures, train nothing"
    )
    parser.add_argument("--threads", type=int, default=2)
    add_results_option(parser)
    add_plot_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    quick = args.quick or args.sample
    tune_fidelity, final_fidelity = ("low", "low") if quick else ("tabulation", "converged")
    seeds = FRESH_SEEDS[:2] if quick else FRESH_SEEDS
    name = "quality-sample" if args.sample else "quality-quick" if quick else "quality"
    models = dict(HAND_DESIGNED)
    runs = args.runs or RESULTS / f"run_agents-shipped-{100 if quick else 500}.jsonl"
    if args.sample:
        searched = args.archs or []
    elif args.archs is None:
        shipped = TABLE_DIR / table_filename(DEFAULT_DATASET)
        searched = searched_architectures(runs, sha256_of(shipped))
    else:
        searched = args.archs
    for i, arch in enumerate(searched):
        arch = Architecture.from_string(arch).to_string()  # validates, canonical form
        label = f"searched {i + 1}" if i else "searched"
        models[label] = arch
        if Architecture.from_string(arch).items != "id":  # the same design on ID features alone
            models[f"{label}, items=id"] = dataclasses.replace(
                Architecture.from_string(arch), items="id"
            ).to_string()

    if args.dry_run:
        print("\n".join(f"{model}: {arch}" for model, arch in models.items()))
        return
    if args.sample:
        from nasenv.testing import make_tiny_dataset

        dataset = make_tiny_dataset()
    else:
        dataset = load_dataset(args.dataset)
    ctx = TrainingContext(dataset)
    args.results.mkdir(parents=True, exist_ok=True)
    journal = Journal(args.results / f"{name}.jsonl")
    lrs = [0.02] if quick else [float(lr) for lr in SLOTS[SLOT_INDEX["lr"]].choices]
    tuning = [(m, with_lr(a, lr)) for m, a in models.items() for lr in lrs]
    chosen: dict[str, str] = {}
    for model, arch in tqdm(tuning, desc="lr tuning"):
        if quick:
            chosen[model] = arch
            continue
        result = journal.train(arch, TUNING_SEED, tune_fidelity, ctx)
        best = chosen.get(model)
        if (
            best is None
            or result.val_recall_best
            > journal.runs[(best, TUNING_SEED, tune_fidelity)].val_recall_best
        ):
            chosen[model] = arch
    finals = [(m, a, s) for m, a in chosen.items() for s in seeds]
    for _, arch, seed in tqdm(finals, desc="fresh seeds"):
        journal.train(arch, seed, final_fidelity, ctx)

    rows = {"popularity": [popularity(ctx)]}
    for model, arch in chosen.items():
        rows[model] = [metrics(journal.runs[(arch, s, final_fidelity)]) for s in seeds]
    reference = statistics.fmean(r["test_recall"] for r in rows["LightGCN"])
    tuning_text = (
        "quick mode: no tuning, the learning rate as written"
        if quick
        else f"lr tuned on validation (seed {TUNING_SEED}, {tune_fidelity!r} budget)"
    )
    lines = [
        f"{dataset.name}; {len(seeds)} fresh seeds {seeds[0]}-{seeds[-1]} at the "
        f"{final_fidelity!r} budget; {tuning_text}.",
        "",
        "| model | architecture (chosen lr) | val Recall@20 | test Recall@20 | test NDCG@20 "
        "| test Recall / LightGCN |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for model, runs in rows.items():
        test_recall = [r["test_recall"] for r in runs]
        lines.append(
            f"| {model} | `{chosen.get(model, '-')}` | {mean_std([r['val_recall'] for r in runs])} "
            f"| {mean_std(test_recall)} | {mean_std([r['test_ndcg'] for r in runs])} "
            f"| {statistics.fmean(test_recall) / reference:.3f} |"
        )
    text = "\n".join(lines)
    (args.results / f"{name}.md").write_text(text + "\n")
    if not args.no_plot:
        plot(rows, args.results / f"{name}.png", dataset.name)
    print(text)


def plot(rows: dict[str, list[dict[str, float]]], path: Path, dataset: str) -> None:
    """Bar chart of test Recall@20 and NDCG@20, mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    names = list(rows)
    for ax, metric in zip(axes, ("test_recall", "test_ndcg"), strict=True):
        values = [[r[metric] for r in rows[n]] for n in names]
        means = [statistics.fmean(v) for v in values]
        stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        ax.bar(names, means, yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
        ax.set_ylabel(metric.replace("test_", "test ").replace("recall", "Recall@20")
                      .replace("ndcg", "NDCG@20"))  # fmt: skip
        ax.tick_params(axis="x", rotation=30)
        plt.setp(ax.get_xticklabels(), ha="right")
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(0, max(m + s for m, s in zip(means, stds, strict=True)) * 1.15 or 1)
    fig.suptitle(f"{dataset}: test quality, mean ± std over fresh seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
