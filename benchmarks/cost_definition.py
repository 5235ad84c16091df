"""How much of a stored cost of version 1 is test passes (``nasenv.results.COST_VERSION``).

    python -m benchmarks.cost_definition              # 8 core architectures of Books-20core
    python -m benchmarks.cost_definition --report-only

Cost version 1 (the shipped tables and surrogate) charged the test pass of every improving epoch
to the epoch after it; version 2 times the test passes apart and charges training and validation
only. This script retrains table entries (seed 0, tabulation budget, one thread) with the version-2
trainer, which records its test passes, and reports for them:

* the test passes' exact share of the version-1 cost of the same run;
* how well ``passes x inference_ms`` (stored in every table) estimates those seconds;
* that estimate's share of every shipped table's stored seconds (a table cannot be converted
  exactly: it never stored its test passes);
* that retraining reproduces the stored validation curve (the quality numbers do not change).

Runs are appended to ``benchmarks/results/cost_definition.jsonl`` as they finish; the report goes
to stdout and ``cost_definition.md`` beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np
from tqdm import tqdm

from benchmarks.common import RESULTS
from nasenv.data import DATASETS, load_dataset
from nasenv.results import FIDELITIES, TrainConfig, TrainResult
from nasenv.table import BenchmarkTable, load_table

JOURNAL = RESULTS / "cost_definition.jsonl"


def test_passes(val_recall: np.ndarray | tuple[float, ...]) -> int:
    """Test passes a version-1 run paid before its last epoch: its improving epochs but the last."""
    best, passes = -np.inf, 0
    for value in list(val_recall)[:-1]:
        if value > best:
            best, passes = value, passes + 1
    return passes


def estimated_share(table: BenchmarkTable) -> np.ndarray:
    """Per (architecture, seed): ``passes x inference_ms`` over the stored version-1 seconds."""
    shares = []
    for i in range(len(table)):
        for j in range(len(table.seeds)):
            n = int(table.arrays["n_epochs"][i, j])
            seconds = float(table.arrays["epoch_seconds"][i, j, n - 1]) if n else 0.0
            latency = float(table.arrays["inference_ms"][i, j])
            if seconds > 0 and np.isfinite(latency):
                curve = table.arrays["val_recall"][i, j, :n]
                shares.append(test_passes(curve) * latency / 1000 / seconds)
    return np.array(shares)


def load_runs() -> dict[str, TrainResult]:
    if not JOURNAL.exists():
        return {}
    runs = (TrainResult.from_dict(json.loads(line)) for line in JOURNAL.read_text().splitlines())
    return {run.arch: run for run in runs}


def train(table: BenchmarkTable, n: int) -> None:
    from nasenv.space import Architecture
    from nasenv.train import TrainingContext, train_architecture

    rows = np.random.default_rng(0).choice(len(table), size=n, replace=False)
    done = load_runs()
    todo = [table.arch_strings[i] for i in rows if table.arch_strings[i] not in done]
    if not todo:
        return
    context = TrainingContext(load_dataset(table.dataset))
    budget = FIDELITIES[table.meta["fidelity"]["name"]]
    config = TrainConfig(budget.max_epochs, budget.patience, budget.batch_size, threads=1)
    for arch in tqdm(todo, desc="trainings", unit="run"):
        run = train_architecture(Architecture.from_string(arch), context, 0, config)
        with open(JOURNAL, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(run.to_dict()) + "\n")


def report(table: BenchmarkTable) -> str:
    runs = [run for run in load_runs().values() if run.ok]
    lines = [f"Retrained: {len(runs)} {table.dataset} table entries (seed 0), one thread.", ""]
    if runs:
        v1 = [run.with_cost_version(1).epoch_seconds[-1] for run in runs]
        paid = [old - run.epoch_seconds[-1] for old, run in zip(v1, runs, strict=True)]
        estimate = [test_passes(r.val_recall) * r.inference_ms / 1000 for r in runs]
        stored = [table.result(r.arch, 0) for r in runs]
        kept = [s.epoch_seconds[-1] for s in stored]
        drift = max(
            float(np.max(np.abs(np.subtract(r.val_recall, s.val_recall, dtype=np.float32))))
            if len(r.val_recall) == len(s.val_recall)
            else float("inf")
            for r, s in zip(runs, stored, strict=True)
        )
        ratios = [e / p for e, p in zip(estimate, paid, strict=True) if p > 0]
        lines += [
            "| measure | median | min | max |",
            "|---|---|---|---|",
            _row("cost, version 2 (s)", [r.epoch_seconds[-1] for r in runs]),
            _row("cost, version 1 (s)", v1),
            _row("test passes in the version-1 cost (s)", paid),
            _row("their share of the version-1 cost", np.divide(paid, v1)),
            _row("estimate (passes x inference_ms) / measured", ratios),
            _row("stored (table) / retrained version-1 cost", np.divide(kept, v1)),
            "",
            f"Largest difference of a validation Recall@20 to the stored curve: {drift:.2g} "
            "(epochs differ: inf).",
            "",
        ]  # fmt: skip
    lines += [
        "Estimated share of test passes in each shipped table's stored seconds (version 1):",
        "",
        "| table | entries | median | 90th percentile | max |",
        "|---|---|---|---|---|",
    ]
    for name in DATASETS:
        try:
            shipped = load_table(name)
        except FileNotFoundError:
            continue
        share = estimated_share(shipped)
        lines.append(
            f"| {name} | {len(share)} | {np.median(share):.3f} | "
            f"{np.percentile(share, 90):.3f} | {share.max():.3f} |"
        )
    return "\n".join(lines) + "\n"


def _row(name: str, values: list[float] | np.ndarray) -> str:
    return f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cost_definition", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dataset", default="Books-20core", choices=list(DATASETS))
    parser.add_argument("--n", type=int, default=8, help="table entries to retrain")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    table = load_table(args.dataset)
    RESULTS.mkdir(exist_ok=True)
    if not args.report_only:
        train(table, args.n)
    text = report(table)
    (RESULTS / "cost_definition.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
