"""Meta-learning across book tasks: does a controller pretrained on the training tasks find a
top architecture of a held-out task in fewer evaluations?

    python -m benchmarks.transfer                 # shipped tables: training -> held-out tasks
    python -m benchmarks.transfer --sample        # the sample tables (tiny -> tiny-b)
    python -m benchmarks.transfer --tune 2.5 1.5 1.0 0.5   # the whole protocol (see below)

For every held-out task and seed (100, 101, ...), five searches of ``--budget`` evaluations on that
task's table env (``seed_policy="random"``):

* ``random``: random search;
* ``reinforce``: the REINFORCE controller from scratch;
* ``portfolio``: the architectures in the order of their mean rank on the training tasks' tables,
  best first (:class:`agents.portfolio.Portfolio`): transfer without any learning, the baseline
  for the two below;
* ``transfer-fine-tune``: the controller pretrained for ``--pretrain`` evaluations on a
  :class:`~nasenv.tasks.TaskSetEnv` of the training tasks (a task drawn per episode), then
  updated as usual on the held-out task (:func:`agents.transfer.transferred`);
* ``transfer-frozen``: the same pretrained controller, only sampled.

Pretraining uses the same seed as the search and never sees a held-out task. Reported per task
and method: evaluations until the incumbent (best reward so far) is in the task's top 1% by
seed-mean validation score (median, its bootstrap interval, and the fraction of runs that got
there), and the final regret. Runs are journalled in ``benchmarks/results/transfer-<name>.jsonl``
(resumable); a PNG of regret curves and a markdown table are written next to it.

``--avoid-repeats`` gives the controllers (from scratch and transferred; not their pretraining)
:class:`~agents.reinforce.Reinforce`'s ``avoid_repeats``: no architecture is evaluated twice on
the held-out task. Its runs keep their own files (``transfer-<name>-no-repeats.*``).

``--tanh-constant C`` bounds the transferred controller's logits by ``C`` instead of the
``tanh_constant`` it was pretrained with (2.5): a smaller ``C`` flattens the learned prior, which
keeps more exploration on a task unlike the training tasks. ``--tune C1 C2 ...`` chooses ``C``
without looking at the held-out tasks: each training task in turn is held out, the controller is
pretrained on the other training tasks, and the ``C`` with the lowest mean (over those tasks) of
the median evaluations to the top 1% of fine-tuned transfer is reported (runs that never get there
count as ``budget + 1``). Its journal is ``transfer-tune-<name>.jsonl``. The held-out study then
runs with both the pretrained bound and the chosen one (``--tune-only`` stops after the choice).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from agents import make_agent
from agents.base import Agent
from agents.portfolio import Portfolio, portfolio
from agents.reinforce import Reinforce
from agents.runner import Budget, run_search
from agents.transfer import pretrain, transferred
from benchmarks.common import add_plot_option, add_results_option, sample_table
from nasenv.data import HELD_OUT_TASKS, TRAINING_TASKS, get_spec, sha256_of
from nasenv.env import RecNASEnv
from nasenv.evaluators import TableEvaluator
from nasenv.leaderboard import (
    hitting_time,
    incumbent_curve,
    median_interval,
    top_threshold,
)
from nasenv.space import SearchSpace
from nasenv.table import BenchmarkTable, load_table
from nasenv.tasks import TaskSetEnv
from nasenv.testing import TINY_SPACE

METHODS = ("random", "reinforce", "portfolio", "transfer-fine-tune", "transfer-frozen")
FIRST_SEED = 100
PRETRAINED_TANH = Reinforce.tanh_constant

Tables = dict[str, BenchmarkTable]


def tables(args: argparse.Namespace) -> tuple[Tables, Tables, str | SearchSpace]:
    """(training tables, held-out tables, space)."""
    if args.sample:
        return {"tiny": sample_table("tiny")}, {"tiny-b": sample_table("tiny-b")}, TINY_SPACE
    overlap = sorted(set(args.train_tasks) & set(args.held_out))
    if overlap:
        raise SystemExit(f"tasks {overlap} are both training and held-out tasks")
    return (
        {name: load_table(name) for name in args.train_tasks},
        {name: load_table(name) for name in args.held_out},
        "core",
    )


def incumbents(history: list[dict], table: BenchmarkTable) -> np.ndarray:
    """Table row of the incumbent after each evaluation of a journalled run."""
    archs, rewards = [t["arch"] for t in history], [t["reward"] for t in history]
    return incumbent_curve(archs, rewards, table)


def table_sha256s(*tables: Tables) -> dict[str, str]:
    """The SHA-256 of every task's table: a rebuilt table starts a fresh set of runs."""
    return {n: sha256_of(Path(t.source)) for group in tables for n, t in group.items()}


def tanh_of(method: str, tanh_constant: float | None) -> float | None:
    """The logit bound a run used: only transferred controllers have one to choose."""
    return tanh_constant if method.startswith("transfer") else None


def same_setup(
    record: dict, args: argparse.Namespace, train_tasks: list[str], sha256s: dict[str, str]
) -> bool:
    """Whether a journalled run belongs to this budget, pretraining, set of training tasks,
    task tables and repeat policy."""
    return (
        record.get("avoid_repeats", False) == args.avoid_repeats
        and record["budget"] == args.budget
        and record["pretrain"] == args.pretrain
        and record.get("train_tasks") == train_tasks
        and record.get("table_sha256") == sha256s
    )


def run_key(record: dict) -> tuple:
    """What distinguishes runs of one setup (journals before ``--tanh-constant`` existed used
    the pretrained bound)."""
    tanh = tanh_of(record["method"], record.get("tanh_constant", PRETRAINED_TANH))
    return record["task"], record["method"], record["seed"], tanh


def env_of(table: BenchmarkTable, space: str | SearchSpace) -> RecNASEnv:
    return RecNASEnv(evaluator=TableEvaluator(table), space=space, seed_policy="random")


def run(
    args: argparse.Namespace,
    path: Path,
    training: Tables,
    held_out: Tables,
    space: str | SearchSpace,
    tanh_constants: Sequence[float],
) -> None:
    """Every (seed, held-out task, method, logit bound) not yet in the journal at ``path``."""
    sha256s = table_sha256s(training, held_out)
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if same_setup(record, args, list(training), sha256s):
                done.add(run_key(record))
    seeds = range(FIRST_SEED, FIRST_SEED + args.seeds)
    jobs = sorted(
        {
            (s, t, m, tanh_of(m, c))
            for s in seeds
            for t in held_out
            for m in METHODS
            for c in tanh_constants
            if (t, m, s, tanh_of(m, c)) not in done
        },
        key=lambda job: (job[0], job[1], METHODS.index(job[2]), -(job[3] or 0.0)),
    )
    weights: dict[int, dict] = {}
    ranking = portfolio(training)
    controllers = {"avoid_repeats": True} if args.avoid_repeats else {}
    with open(path, "a") as out:
        for seed, task, method, tanh in tqdm(jobs, desc="searches"):
            if method.startswith("transfer") and seed not in weights:
                task_set = TaskSetEnv({n: env_of(t, space) for n, t in training.items()})
                weights = {seed: pretrain(task_set, args.pretrain, seed=seed)}  # jobs: seed-major
            if method.startswith("transfer"):
                fine_tune = method.endswith("fine-tune")
                agent: Agent = transferred(
                    weights[seed], seed, fine_tune, tanh_constant=tanh, **controllers
                )
            elif method == "portfolio":
                agent = Portfolio(seed, architectures=ranking)
            elif method == "reinforce":
                agent = make_agent(method, seed=seed, **controllers)
            else:
                agent = make_agent(method, seed=seed)
            result = run_search(agent, env_of(held_out[task], space), Budget(args.budget), seed)
            record = {
                "task": task,
                "method": method,
                "seed": seed,
                "tanh_constant": tanh,
                "budget": args.budget,
                "pretrain": args.pretrain,
                "avoid_repeats": args.avoid_repeats,
                "train_tasks": list(training),
                "table_sha256": sha256s,
                "history": [{"arch": t.arch, "reward": t.reward} for t in result.history],
            }
            out.write(json.dumps(record) + "\n")
            out.flush()


def label(method: str, tanh: float | None) -> str:
    return method if tanh is None or tanh == PRETRAINED_TANH else f"{method} (C={tanh:g})"


def hitting_times(
    args: argparse.Namespace, path: Path, training: Tables, held_out: Tables
) -> dict[tuple[str, str, float | None], tuple[list[float], np.ndarray, list[int]]]:
    """Per (task, method, logit bound): the runs' evaluations to the top 1%, regret curves and
    numbers of distinct architectures evaluated."""
    sha256s = table_sha256s(training, held_out)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records = [r for r in records if same_setup(r, args, list(training), sha256s)]
    groups: dict[tuple[str, str, float | None], list[dict]] = {}
    for record in records:
        task, method, _, tanh = run_key(record)
        groups.setdefault((task, method, tanh), []).append(record)
    out = {}
    for task, table in held_out.items():
        scores = table.scores()
        ranked = np.sort(scores)[::-1]
        top1 = top_threshold(scores, 0.01)
        keys = sorted((k for k in groups if k[0] == task),
                      key=lambda k: (METHODS.index(k[1]), -(k[2] or 0.0)))  # fmt: skip
        for key in keys:
            curves = np.stack([scores[incumbents(r["history"], table)] for r in groups[key]])
            distinct = [len({trial["arch"] for trial in r["history"]}) for r in groups[key]]
            out[key] = ([hitting_time(c, top1) for c in curves], ranked[0] - curves, distinct)
    return out


def report(args: argparse.Namespace, path: Path, training: Tables, held_out: Tables) -> str:
    """The markdown table of the runs at ``path`` (written beside it) and, unless ``--no-plot``,
    a PNG of their regret curves."""
    results = hitting_times(args, path, training, held_out)
    marks = sorted({m for m in (1, 10, 100) if m < args.budget} | {args.budget})
    lines = [
        f"Pretraining: {args.pretrain} evaluations on the training tasks "
        f"({', '.join(training)}); budget {args.budget} evaluations on each held-out task.",
        "",
        "| held-out task | method | runs | median evals to top 1% (reached) "
        f"| its 95% bootstrap interval | mean regret after {' / '.join(map(str, marks))} "
        "| distinct architectures (median) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task in held_out:
        for (t, method, tanh), (hits, regret, distinct) in results.items():
            if t != task:
                continue
            mean = regret.mean(0)
            low, high = median_interval(hits)
            lines.append(
                f"| {task} | {label(method, tanh)} | {len(hits)} | {np.median(hits):g} "
                f"({np.mean(np.isfinite(hits)):.0%}) | {low:g}-{high:g} "
                f"| {' / '.join(f'{mean[m - 1]:.4f}' for m in marks)} "
                f"| {np.median(distinct):g} |"
            )
    if not args.no_plot:
        plot(args, results, training, held_out, path.with_suffix(".png"))
    text = "\n".join(lines)
    path.with_suffix(".md").write_text(text + "\n")
    return text


def plot(
    args: argparse.Namespace,
    results: dict[tuple[str, str, float | None], tuple[list[float], np.ndarray, list[int]]],
    training: Tables,
    held_out: Tables,
    out: Path,
) -> None:
    """Mean regret curves (with their standard error) per held-out task and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(held_out), figsize=(6 * len(held_out), 4.5), squeeze=False)
    for ax, task in zip(axes[0], held_out, strict=False):
        for (t, method, tanh), (hits, regret, _) in results.items():
            if t != task:
                continue
            mean = regret.mean(0)
            se = regret.std(0, ddof=1) / math.sqrt(len(hits)) if len(hits) > 1 else 0 * mean
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, label=label(method, tanh))
            ax.fill_between(x, mean - se, mean + se, alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("evaluations on the held-out task")
        ax.set_ylabel("regret (validation Recall@20, seed mean)")
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend()
    repeats = "; controllers without repeats" if args.avoid_repeats else ""
    fig.suptitle(f"Pretrained on {', '.join(training)}{repeats}")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def tune(args: argparse.Namespace, path: Path) -> tuple[str, float]:
    """Leave one training task out at a time: a markdown report ending with the chosen bound, and
    the bound."""
    training, held_out, space = tables(args)
    pool = {**training, **held_out} if args.sample else training  # the sample has two tasks
    if len(pool) < 2:
        raise SystemExit(f"--tune needs at least 2 training tasks with tables, got {list(pool)}")
    scores: dict[float, list[float]] = {c: [] for c in args.tune}
    references: dict[str, list[float]] = {}  # the same folds without transfer, for context
    for task, table in pool.items():
        others = {n: t for n, t in pool.items() if n != task}
        run(args, path, others, {task: table}, space, args.tune)
        results = hitting_times(args, path, others, {task: table})
        for c in args.tune:
            hits = results[task, "transfer-fine-tune", c][0]
            scores[c].append(float(np.median(np.minimum(hits, args.budget + 1))))
        for method in ("random", "reinforce", "portfolio"):
            hits = results[task, method, None][0]
            references.setdefault(method, []).append(
                float(np.median(np.minimum(hits, args.budget + 1)))
            )
    lines = [
        "Leave-one-training-task-out choice of the transferred controller's logit bound C",
        f"(median evaluations to the top 1%, fine-tuned transfer, {args.seeds} seeds; "
        f"never = {args.budget + 1}):",
        "",
        "| C | " + " | ".join(pool) + " | mean |",
        "| --- | " + " | ".join("---" for _ in pool) + " | --- |",
    ]
    for c, values in scores.items():
        cells = " | ".join(f"{v:g}" for v in values)
        lines.append(f"| {c:g} | {cells} | {np.mean(values):g} |")
    for method, values in references.items():
        cells = " | ".join(f"{v:g}" for v in values)
        what = "the other tasks' ranking" if method == "portfolio" else "no transfer"
        lines.append(f"| ({method}, {what}) | {cells} | {np.mean(values):g} |")
    chosen = min(scores, key=lambda c: (np.mean(scores[c]), -c))
    lines += ["", f"chosen: --tanh-constant {chosen:g}"]
    text = "\n".join(lines)
    path.with_suffix(".md").write_text(text + "\n")
    return text, chosen


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``argv`` defaults to ``sys.argv[1:]``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.transfer", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sample", action="store_true", help="the sample tables")
    parser.add_argument("--seeds", type=int, default=20, help="runs per task and method")
    parser.add_argument("--budget", type=int, default=200, help="evaluations on a held-out task")
    parser.add_argument("--pretrain", type=int, default=1000, help="pretraining evaluations")
    parser.add_argument(
        "--train-tasks", nargs="+", default=list(TRAINING_TASKS), help="pretraining task set"
    )
    parser.add_argument("--held-out", nargs="+", default=list(HELD_OUT_TASKS), help="test tasks")
    parser.add_argument(
        "--tanh-constant",
        type=float,
        default=PRETRAINED_TANH,
        help=f"logit bound of the transferred controller (default {PRETRAINED_TANH:g}, as "
        "pretrained; smaller flattens the prior)",
    )
    parser.add_argument(
        "--tune",
        type=float,
        nargs="+",
        metavar="C",
        help="choose the logit bound among these, leaving one training task out at a time, then "
        "run the held-out study with it and with the pretrained bound",
    )
    parser.add_argument("--tune-only", action="store_true", help="stop after choosing the bound")
    parser.add_argument(
        "--avoid-repeats",
        action="store_true",
        help="controllers never evaluate an architecture twice on the searched task",
    )
    add_results_option(parser)
    add_plot_option(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    if args.sample:
        name = "sample"
    elif args.train_tasks == list(TRAINING_TASKS):
        name = "tasks"
    else:  # a partial task set (e.g. while task tables are being built) keeps its own files
        name = "from-" + "-".join(get_spec(t).slug for t in args.train_tasks)
    if args.avoid_repeats:
        name += "-no-repeats"
    bounds = [args.tanh_constant]
    if args.tune:
        text, chosen = tune(args, args.results / f"transfer-tune-{name}.jsonl")
        print(text + "\n")
        if args.tune_only:
            return
        bounds = sorted({PRETRAINED_TANH, chosen}, reverse=True)
    path = args.results / f"transfer-{name}.jsonl"
    training, held_out, space = tables(args)
    run(args, path, training, held_out, space, bounds)
    print(report(args, path, training, held_out))


if __name__ == "__main__":
    main()
