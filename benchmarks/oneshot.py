"""One-shot searchers (DARTS, GDAS, SPOS/RSPS, ENAS) on the real data, scored by the table as
NAS-Bench-201 (Dong & Yang 2020) scores weight-sharing methods.

    python -m benchmarks.oneshot                                 # Books-20core, 3 seeds each
    python -m benchmarks.oneshot --datasets Books-20core Books-USA-20core --seeds 5
    python -m benchmarks.oneshot --searchers spos gdas --threads 1
    python -m benchmarks.oneshot --table sample --epochs 2 --seeds 1   # smoke run (seconds)

Every searcher of :data:`agents.oneshot.SEARCHERS` searches the core space with its defaults on
the task's training interactions (search seeds 100, 101, ...: the leaderboard's), selecting on
validation only; the shipped table then scores the one architecture it derives: its seed-mean
validation and test Recall@20, and its rank among the 708 by seed-mean validation Recall@20
(1 = the best). Beside it: the search's real wall seconds (on this machine, ``--threads``
torch threads), what random search would have paid to sample an architecture at least as good
(``708 / #{as good}`` evaluations expected, each at the table's mean seconds: simulated, cost
version of the table), the median simulated hours random search and regularized evolution took
to reach an incumbent as good on the leaderboard's protocol (20 runs of up to 3,000
evaluations; the incumbent's seed-mean score), and the supernet's own ranking quality:
Kendall's tau-b (and Spearman's rho) between the inherited-weight validation Recall@20 of all
708 architectures and the table's seed-mean validation Recall@20 (the two losses'
architectures tie under inherited weights).

Runs are kept in ``benchmarks/results/oneshot.json`` (resumable: a finished run of the same
dataset, searcher, seed and epochs is not repeated) and reported in ``oneshot.md``, mean ± std
over seeds per searcher. ``--table sample`` searches the tests' ``TINY_SPACE`` on the synthetic
dataset of ``nasenv.testing`` and scores with the committed sample table (``oneshot-sample.*``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from agents.evolution import RegularizedEvolution
from agents.oneshot import SEARCHERS, OneShotResult
from agents.random_search import RandomSearch
from agents.runner import Budget, run_search
from benchmarks.common import add_results_option, sample_table
from nasenv.data import DEFAULT_DATASET, load_dataset
from nasenv.env import RecNASEnv
from nasenv.leaderboard import PROTOCOL, hitting_time, incumbent_curve
from nasenv.space import CORE, Architecture, SearchSpace
from nasenv.surrogate import kendall_tau, spearman
from nasenv.table import BenchmarkTable, load_table
from nasenv.testing import TINY_SPACE, make_tiny_dataset
from nasenv.train import TrainingContext


def table_facts(table: BenchmarkTable, arch: Architecture | str) -> dict[str, Any]:
    """The table's view of the derived architecture, and random search's price for as good."""
    val = table.scores("recall", "mean")
    i = table.index(arch)
    as_good = int((val >= val[i]).sum())
    evaluations = len(table) / as_good
    return {
        "val_recall": float(val[i]),
        "test_recall": table.test_metrics(i, "mean")["test_recall"],  # reported, never selected
        "rank": int((val > val[i]).sum()) + 1,
        "n_archs": len(table),
        "best_val_recall": float(val.max()),
        "random_evaluations": evaluations,
        "random_seconds": evaluations * float(table.costs("mean").mean()),
        "cost_version": table.cost_version,
        "k": table.k,
    }


SAMPLE_AGENTS: dict[str, Any] = {"random": RandomSearch, "evolution": RegularizedEvolution}
"""The sample-based agents whose simulated seconds to reach a derived architecture's quality are
reported beside it."""
SAMPLE_RUNS, SAMPLE_EVALUATIONS = 20, 3000


@functools.cache
def incumbent_paths(dataset: str, agent: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per run of ``agent`` on the leaderboard's protocol for ``dataset`` (the table env, seed
    policy random, seeds 100..119): the simulated seconds after each evaluation and the
    seed-mean validation Recall@20 of the incumbent then (the best reward so far)."""
    table = load_table(dataset)
    val = table.scores("recall", "mean")
    paths = []
    for seed in PROTOCOL.seeds(SAMPLE_RUNS):
        env = RecNASEnv(dataset=dataset, seed_policy=PROTOCOL.seed_policy)
        agent_ = SAMPLE_AGENTS[agent](seed=seed)
        result = run_search(agent_, env, Budget(SAMPLE_EVALUATIONS), seed)
        history = result.history
        rows = incumbent_curve([t.arch for t in history], [t.reward for t in history], table)
        seconds = np.array([trial.total_seconds for trial in history])
        paths.append((seconds, val[rows]))
    return paths


def seconds_to_reach(dataset: str, agent: str, threshold: float) -> float:
    """Median over runs of the simulated seconds until the incumbent's seed-mean validation
    Recall@20 reaches ``threshold`` (``inf`` for a run that does not within its budget)."""
    times = []
    for seconds, incumbent in incumbent_paths(dataset, agent):
        evaluation = hitting_time(incumbent, threshold)
        times.append(float(seconds[int(evaluation) - 1]) if evaluation < math.inf else math.inf)
    return float(np.median(times))


def ranking_quality(table: BenchmarkTable, result: OneShotResult) -> dict[str, float]:
    """Kendall's tau-b and Spearman's rho of inherited-weight scores against the table."""
    if result.supernet is None:
        raise ValueError(f"{result.searcher} returned no supernet to score")
    archs = [table.arch(i) for i in range(len(table))]
    if result.inherited_scores is not None and list(result.space) == archs:
        inherited = result.inherited_scores
    else:
        inherited = result.supernet.scores(archs)
    val = table.scores("recall", "mean")
    return {"kendall_tau": kendall_tau(inherited, val), "spearman": spearman(inherited, val)}


def sample_based(
    args: argparse.Namespace, dataset: str, table: BenchmarkTable, arch: Architecture | str
) -> dict[str, float]:
    """``{agent}_seconds_to_as_good``: :func:`seconds_to_reach` the derived architecture's seed-mean
    validation Recall@20, for each of :data:`SAMPLE_AGENTS` (shipped tables only)."""
    if args.table != "shipped":
        return {}
    threshold = float(table.scores("recall", "mean")[table.index(arch)])
    return {
        f"{agent}_seconds_to_as_good": seconds_to_reach(dataset, agent, threshold)
        for agent in SAMPLE_AGENTS
    }


def rescore(record: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``record`` with its table facts and sample-based seconds computed again."""
    table = sample_table() if args.table == "sample" else load_table(record["dataset"])
    stale = {k for k in record if k.endswith(("_seconds_to_as_good", "_seconds"))}
    kept = {k: v for k, v in record.items() if k not in stale or k == "wall_seconds"}
    return {
        **kept,
        **table_facts(table, record["arch"]),
        **sample_based(args, record["dataset"], table, record["arch"]),
    }


def run(
    name: str,
    context: TrainingContext,
    space: SearchSpace,
    table: BenchmarkTable,
    seed: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    overrides: dict[str, Any] = {} if args.epochs is None else {"epochs": args.epochs}
    if args.table == "sample":
        overrides["batch_size"] = table.meta["fidelity"]["batch_size"]
    result = SEARCHERS[name](**overrides).search(context, seed, space=space, threads=args.threads)
    record = {
        "dataset": context.dataset.name,
        "searcher": name,
        "seed": seed,
        "epochs": result.hyperparameters["epochs"],
        "threads": args.threads,
        "arch": str(result.arch),
        "depth": result.arch.depth,
        "wall_seconds": result.wall_seconds,
        "inherited_val_recall": result.supernet.score(result.arch) if result.supernet else None,
        **table_facts(table, result.arch),
        **sample_based(args, context.dataset.name, table, result.arch),
        **({} if args.skip_tau else ranking_quality(table, result)),
        "final_probabilities": result.history[-1].probabilities if result.history else {},
        "hyperparameters": {k: str(v) for k, v in result.hyperparameters.items()},
    }
    print(
        f"{record['dataset']} {name} seed {seed}: {record['arch']} rank {record['rank']} "
        f"val {record['val_recall']:.4f} in {record['wall_seconds']:.0f} s",
        flush=True,
    )
    return record


def mean_std(values: list[float], digits: int = 4) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


def _reach(runs: list[dict[str, Any]]) -> str:
    """Median over search seeds of the sample-based agents' simulated minutes to as good."""
    cells = []
    for agent in SAMPLE_AGENTS:
        key = f"{agent}_seconds_to_as_good"
        values = [r[key] for r in runs if key in r]
        cells.append(f"{statistics.median(values) / 60:.1f}" if values else "-")
    return ", ".join(cells)


def report(records: list[dict[str, Any]]) -> str:
    """Markdown: one row per (dataset, searcher), then every run's derived architecture."""
    k = records[0]["k"] if records else 20
    lines = [
        "One-shot searchers on the real data, the derived architecture scored by the table "
        "(mean ± std over search seeds; rank among the table's architectures by seed-mean "
        "validation Recall@K, 1 = best; wall seconds of the whole search on this machine; "
        "random search: expected evaluations, and simulated hours at the table's mean cost, "
        "to sample an architecture at least as good; tau: Kendall's tau-b of the inherited-"
        "weight scores of all architectures against the table).",
        "",
        f"| dataset | searcher | runs | val R@{k} | test R@{k} | rank | wall s | random: evals"
        " (sim. h) | sim. min to as good: random, evolution | Kendall tau | derived depths |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["dataset"], record["searcher"]), []).append(record)
    for (dataset, searcher), runs in groups.items():
        taus = [r["kendall_tau"] for r in runs if "kendall_tau" in r]
        evals = statistics.median(r["random_evaluations"] for r in runs)
        hours = statistics.median(r["random_seconds"] for r in runs) / 3600
        depths = Counter(r["depth"] for r in runs)
        lines.append(
            f"| {dataset} | {searcher} | {len(runs)} | {mean_std([r['val_recall'] for r in runs])}"
            f" | {mean_std([r['test_recall'] for r in runs])} | "
            f"{', '.join(str(r['rank']) for r in runs)} | "
            f"{mean_std([r['wall_seconds'] for r in runs], 0)} | {evals:.1f} ({hours:.2f}) | "
            f"{_reach(runs)} | {mean_std(taus, 3)} | {dict(sorted(depths.items()))} |"
        )
    lines += [
        "",
        "| dataset | searcher | seed | epochs | derived architecture | rank | sim. min to as good: "
        "random, evolution |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['dataset']} | {r['searcher']} | {r['seed']} | {r['epochs']} | `{r['arch']}` | "
        f"{r['rank']} | {_reach([r])} |"
        for r in records
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.oneshot", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--table", default="shipped", choices=["shipped", "sample"])
    parser.add_argument("--datasets", nargs="+", default=[DEFAULT_DATASET])
    parser.add_argument("--searchers", nargs="+", default=list(SEARCHERS), choices=list(SEARCHERS))
    parser.add_argument("--seeds", type=int, default=3, help="search seeds per searcher (3)")
    parser.add_argument("--epochs", type=int, default=None, help="override every searcher's")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per search")
    parser.add_argument("--skip-tau", action="store_true", help="no ranking of all 708")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="recompute the table's scores of the stored runs' architectures (after a table or "
        "scoring change), search nothing",
    )
    add_results_option(parser)
    args = parser.parse_args()
    name = "oneshot" if args.table == "shipped" else f"oneshot-{args.table}"
    args.results.mkdir(parents=True, exist_ok=True)
    path: Path = args.results / f"{name}.json"
    records: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []

    if args.rescore:
        records = [rescore(record, args) for record in records]
        path.write_text(json.dumps(records, indent=1) + "\n")
    tasks = [] if args.rescore else ["tiny"] if args.table == "sample" else args.datasets
    for dataset in tasks:
        if args.table == "sample":
            table, space = sample_table(), TINY_SPACE
            data = dataclasses.replace(make_tiny_dataset(), name="tiny")
        else:
            table, space, data = load_table(dataset), CORE, load_dataset(dataset)
        context = TrainingContext(data, k=table.k)
        for searcher in args.searchers:
            epochs = args.epochs or SEARCHERS[searcher]().epochs
            for seed in PROTOCOL.seeds(args.seeds):
                done = [(r["dataset"], r["searcher"], r["seed"], r["epochs"]) for r in records]
                if (data.name, searcher, seed, epochs) in done:
                    continue
                records.append(run(searcher, context, space, table, seed, args))
                path.write_text(json.dumps(records, indent=1) + "\n")
    text = report(records)
    (args.results / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
