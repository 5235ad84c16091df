"""The whole search with the item text encoder as a decision (issue 20): does the searched
recommender move when the search may also pick an adapted encoder?

    python -m benchmarks.encoder_search           # every task with a core-v1 table
    python -m benchmarks.encoder_search --quick   # one task, 2 agents x 2 x 40, no retraining

For each task whose ``core-v1`` table ships (``load_table(task, space="core-v1")``):

1. **The tables.** The best architecture by seed-mean validation Recall@20 in ``core`` and in
   ``core-v1``, with its seed-mean test Recall@20 from the table (reporting only) and the ratio
   to LightGCN-3 (ID items) of the same table, and how many of ``core-v1``'s ten best use an
   adapted encoder.
2. **The search.** Each agent, ``--runs`` runs of ``--budget`` evaluations on both spaces, on the
   leaderboard's protocol otherwise (table back end, every evaluation one training seed drawn by
   the env, reward validation Recall@20). A run selects its best-rewarded architecture; reported:
   the selected architecture's seed-mean test Recall@20 from the table over LightGCN-3's, the
   share of runs that select an adapted encoder, and the one-off adaptation seconds a run pays
   (``adapt_seconds`` of every encoder it tried) beside its training seconds.
3. **Retrained** (not in ``--quick``): both tables' best and LightGCN-3, each with the fresh
   seeds 1000-1004 at the converged budget; test Recall@20 and NDCG@20, with a paired t-test of
   ``core-v1``'s best against ``core``'s. Journal: ``benchmarks/results/encoder_search.jsonl``.

Results: ``benchmarks/results/encoder_search.{json,md}`` (``-quick`` for the smoke run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agents import make_agent
from agents.runner import Budget, run_search
from benchmarks.common import add_results_option, write_results
from nasenv.cli import LIGHTGCN
from nasenv.data import DATASETS, adapt_seconds, load_dataset
from nasenv.env import RecNASEnv
from nasenv.evaluators import TableEvaluator, fresh_seeds
from nasenv.results import FIDELITIES
from nasenv.space import CORE, CORE_V1, FROZEN, Architecture
from nasenv.table import BenchmarkTable, load_table

AGENTS = ("random", "evolution", "reinforce", "mcts", "tpe")
SPACES = {"core": CORE, "core-v1": CORE_V1}


def tables(task: str) -> dict[str, BenchmarkTable]:
    """The task's tables of both spaces."""
    return {"core": load_table(task), "core-v1": load_table(task, space="core-v1")}


def table_facts(task: str, both: dict[str, BenchmarkTable]) -> dict[str, Any]:
    """Part 1 of the module docstring."""
    reference = both["core"].test_metrics(LIGHTGCN)["test_recall"]
    facts: dict[str, Any] = {"lightgcn_test_recall": reference}
    for name, table in both.items():
        (best, val), *_ = table.top_k(1)
        test = table.test_metrics(best)["test_recall"]
        facts[name] = {"arch": str(best), "val_recall": val, "test_recall": test}
        facts[name]["ratio"] = test / reference
    top = [Architecture.from_string(str(a)) for a, _ in both["core-v1"].top_k(10)]
    facts["adapted_in_top10"] = sum(arch.encoder != FROZEN for arch in top)
    return facts


def search(
    task: str, table: BenchmarkTable, space: str, agent: str, seed: int, budget: int
) -> dict[str, Any]:
    """One run: what part 2 of the module docstring reports of it."""
    env = RecNASEnv(evaluator=TableEvaluator(table), space=SPACES[space], seed_policy="random")
    result = run_search(make_agent(agent, seed=seed), env, Budget(evaluations=budget), seed=seed)
    assert result.best is not None
    tried = {Architecture.from_string(trial.arch).encoder for trial in result.history}
    best = Architecture.from_string(result.best.arch)
    return {
        "task": task,
        "space": space,
        "agent": agent,
        "seed": seed,
        "budget": budget,
        "arch": result.best.arch,
        "test_recall": table.test_metrics(best)["test_recall"],
        "adapted": best.encoder != FROZEN,
        "train_seconds": sum(trial.cost_seconds for trial in result.history),
        "adapt_seconds": sum(adapt_seconds(task, encoder) for encoder in tried),
    }


def retrain(task: str, arch: str, seed: int) -> dict[str, Any]:
    """Part 3: one training at the converged budget."""
    from nasenv.train import TrainingContext, train_architecture

    context = TrainingContext(load_dataset(task))
    result = train_architecture(
        Architecture.from_string(arch), context, seed, FIDELITIES["converged"]
    )
    return {
        "task": task,
        "arch": arch,
        "seed": seed,
        "status": result.status,
        "test_recall": result.test_recall,
        "test_ndcg": result.test_ndcg,
        "seconds": round(result.train_seconds, 1),
    }


def _journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def summarise(
    facts: dict[str, dict[str, Any]], runs: list[dict[str, Any]], trained: list[dict[str, Any]]
) -> dict[str, Any]:
    """Per task: the table facts, per (agent, space) the mean selected ratio and shares, and
    the retrained comparison."""
    from scipy import stats

    summary: dict[str, Any] = {}
    for task, task_facts in facts.items():
        reference = task_facts["lightgcn_test_recall"]
        rows = []
        for agent in sorted({r["agent"] for r in runs if r["task"] == task}):
            for space in SPACES:
                mine = [
                    r for r in runs if (r["task"], r["agent"], r["space"]) == (task, agent, space)
                ]
                if not mine:
                    continue
                ratios = np.array([r["test_recall"] / reference for r in mine])
                rows.append(
                    {
                        "agent": agent,
                        "space": space,
                        "runs": len(mine),
                        "budget": mine[0]["budget"],
                        "ratio": float(ratios.mean()),
                        "ratio_se": float(ratios.std(ddof=1) / np.sqrt(len(ratios)))
                        if len(ratios) > 1
                        else float("nan"),
                        "adapted_share": float(np.mean([r["adapted"] for r in mine])),
                        "train_seconds": float(np.mean([r["train_seconds"] for r in mine])),
                        "adapt_seconds": float(np.mean([r["adapt_seconds"] for r in mine])),
                    }
                )
        entry: dict[str, Any] = {"tables": task_facts, "search": rows}
        by_arch: dict[str, dict[int, dict[str, Any]]] = {}
        for record in trained:
            if record["task"] == task:
                by_arch.setdefault(record["arch"], {})[record["seed"]] = record
        names = {"lightgcn": LIGHTGCN, "core": task_facts["core"]["arch"]}
        names["core-v1"] = task_facts["core-v1"]["arch"]
        if all(arch in by_arch for arch in names.values()):
            seeds = sorted(set.intersection(*(set(by_arch[a]) for a in names.values())))
            retrained: dict[str, Any] = {"seeds": seeds}
            for label, arch in names.items():
                for metric in ("test_recall", "test_ndcg"):
                    values = [by_arch[arch][s][metric] for s in seeds]
                    retrained[f"{label}_{metric}"] = [float(np.mean(values)), float(np.std(values))]
            if len(seeds) > 1 and names["core"] != names["core-v1"]:
                for metric in ("test_recall", "test_ndcg"):
                    after = [by_arch[names["core-v1"]][s][metric] for s in seeds]
                    before = [by_arch[names["core"]][s][metric] for s in seeds]
                    retrained[f"p_{metric}"] = float(stats.ttest_rel(after, before).pvalue)
            entry["retrained"] = retrained
        summary[task] = entry
    return summary


def markdown(summary: dict[str, Any]) -> str:
    lines = ["# The whole search with the encoder decision (core against core-v1)", ""]
    for task, entry in summary.items():
        t = entry["tables"]
        lines += [
            f"## {task}",
            "",
            "LightGCN-3 (ID items), table seed-mean test Recall@20: "
            f"{t['lightgcn_test_recall']:.4f}",
            "",
            "| table | best by seed-mean validation | val R@20 | test R@20 | x LightGCN-3 |",
            "| --- | --- | --- | --- | --- |",
        ]
        for space in SPACES:
            f = t[space]
            lines.append(
                f"| {space} | `{f['arch']}` | {f['val_recall']:.4f} | {f['test_recall']:.4f} | "
                f"{f['ratio']:.3f} |"
            )
        lines += [
            "",
            f"Adapted encoders among core-v1's ten best: {t['adapted_in_top10']}.",
            "",
            "| agent | space | runs x budget | selected test R@20 x LightGCN-3 | adapted share "
            "| training s | one-off adaptation s |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in entry["search"]:
            lines.append(
                f"| {row['agent']} | {row['space']} | {row['runs']} x {row['budget']} | "
                f"{row['ratio']:.3f} ± {row['ratio_se']:.3f} | {row['adapted_share']:.2f} | "
                f"{row['train_seconds']:.0f} | {row['adapt_seconds']:.0f} |"
            )
        if "retrained" in entry:
            r = entry["retrained"]
            lines += [
                "",
                f"Retrained at the converged budget, seeds {r['seeds']} (mean ± std):",
                "",
                "| | test Recall@20 | test NDCG@20 |",
                "| --- | --- | --- |",
            ]
            for label in ("lightgcn", "core", "core-v1"):
                recall, ndcg = r[f"{label}_test_recall"], r[f"{label}_test_ndcg"]
                lines.append(
                    f"| {label} | {recall[0]:.4f} ± {recall[1]:.4f} | "
                    f"{ndcg[0]:.4f} ± {ndcg[1]:.4f} |"
                )
            if "p_test_recall" in r:
                lines += [
                    "",
                    f"core-v1's best against core's, paired t-test over seeds: recall p = "
                    f"{r['p_test_recall']:.3g}, NDCG p = {r['p_test_ndcg']:.3g}.",
                ]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", help="default: every task with a core-v1 table")
    parser.add_argument("--agents", nargs="+", default=list(AGENTS))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5, help="fresh seeds of the retraining")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the first task only, 2 agents x 2 runs x 40, no retraining",
    )
    add_results_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.agents, args.runs, args.budget = ["random", "evolution"], 2, 40
    tasks = args.tasks or [t for t in DATASETS if _has_v1_table(t)]
    if not tasks:
        parser.error("no task has a core-v1 table yet (scripts/assemble_table.py --base)")
    if args.quick and not args.tasks:
        tasks = tasks[:1]
    stem = "encoder_search-quick" if args.quick else "encoder_search"
    journal = args.results / f"{stem}.jsonl"
    done = _journal(journal)
    facts = {}
    for task in tasks:
        both = tables(task)
        facts[task] = table_facts(task, both)
        keys = {(r.get("kind"), r["task"], r.get("space"), r.get("agent"), r["seed"]) for r in done}
        todo = [
            (space, agent, seed)
            for agent in args.agents
            for space in SPACES
            for seed in range(100, 100 + args.runs)
            if ("search", task, space, agent, seed) not in keys
        ]
        for space, agent, seed in tqdm(todo, desc=f"{task} searches", file=sys.stderr):
            record = {
                "kind": "search",
                **search(task, both[space], space, agent, seed, args.budget),
            }
            done.append(record)
            _append(journal, record)
        if args.quick:
            continue
        archs = dict.fromkeys(
            [LIGHTGCN, facts[task]["core"]["arch"], facts[task]["core-v1"]["arch"]]
        )
        trained_keys = {(r["task"], r["arch"], r["seed"]) for r in done if r.get("kind") == "train"}
        todo_train = [
            (arch, seed)
            for arch in archs
            for seed in fresh_seeds(args.seeds)
            if (task, arch, seed) not in trained_keys
        ]
        for arch, seed in tqdm(todo_train, desc=f"{task} retraining", file=sys.stderr):
            record = {"kind": "train", **retrain(task, arch, seed)}
            done.append(record)
            _append(journal, record)
    runs = [r for r in done if r.get("kind") == "search" and r["budget"] == args.budget]
    trained = [r for r in done if r.get("kind") == "train"]
    summary = summarise(facts, runs, trained)
    write_results(args.results, stem, summary, markdown(summary))


def _has_v1_table(task: str) -> bool:
    try:
        load_table(task, space="core-v1")
    except FileNotFoundError:
        return False
    return True


if __name__ == "__main__":
    main()
