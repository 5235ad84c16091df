"""Score a search agent on the leaderboard's protocol, beside the shipped agents.

    recnas leaderboard --agent tpe                      # a shipped agent, re-run
    recnas leaderboard --agent mypackage.search:MyAgent # yours: a class or a function
    recnas leaderboard --agent mymodule:search --runs 10 --budget 200 --out my-runs

An agent is given as a name of :data:`agents.AGENTS` or as ``module:attribute``, where the
attribute is

* a class whose instances have ``search(runner)`` (an :class:`agents.base.Agent`, or any class
  taking ``seed=`` with that method); the run's seed is passed as ``seed=``;
* a function ``search(runner)`` or ``search(runner, seed)``.

``runner`` is an :class:`agents.runner.SearchRunner`: a Gymnasium env (``reset``/``step``, masks
through ``runner.unwrapped.action_masks()``) that also takes whole architectures
(``runner.evaluate(arch)``) and ends the search when the budget is spent. Every run makes
``gym.make(PROTOCOL.env_id)`` afresh and resets it with the run's seed, exactly as the shipped
agents' runs were made (:data:`nasenv.leaderboard.PROTOCOL`); scores come from
:func:`nasenv.leaderboard.score`, so the printed table and the plot are the README's with your
rows added.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import nasenv  # noqa: F401 - registers the ids
from agents import AGENTS, make_agent
from agents.runner import Budget, SearchAgent, SearchRunner, run_search
from nasenv.data import sha256_of
from nasenv.leaderboard import (
    PROTOCOL,
    Protocol,
    Runs,
    incumbent_curve,
    markdown,
    reference_runs,
    regret_curves,
    score,
)
from nasenv.table import BenchmarkTable, load_table

AgentFactory = Callable[[int], SearchAgent]
"""``seed -> agent``: an object with ``search(runner)`` (and a ``name``)."""


@dataclass
class FunctionAgent:
    """A search function as an agent: ``search(runner)`` or ``search(runner, seed)``."""

    function: Callable[..., Any]
    seed: int
    name: str

    def search(self, runner: SearchRunner) -> None:
        if "seed" in inspect.signature(self.function).parameters:
            self.function(runner, seed=self.seed)
        else:
            self.function(runner)

    def hyperparameters(self) -> dict[str, Any]:
        return {}


def load_agent(spec: str) -> tuple[str, AgentFactory]:
    """``(name, factory)`` of a registered agent name or a ``module:attribute`` spec.

    Raises:
        ValueError: neither a registered name nor an importable ``module:attribute`` of a class
            or function.
    """
    if spec in AGENTS:
        return spec, lambda seed: make_agent(spec, seed=seed)
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(
            f"agent {spec!r} is neither a registered agent {list(AGENTS)} nor 'module:attribute'"
        )
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot load agent {spec!r}: {error}") from None
    if inspect.isclass(target):
        name = str(getattr(target, "name", attribute))
        agent_type: Callable[..., Any] = target  # the user's class, taking seed=
        return name, lambda seed: agent_type(seed=seed)
    if callable(target):
        return attribute, lambda seed: FunctionAgent(target, seed, attribute)
    raise ValueError(f"agent {spec!r} is a {type(target).__name__}, not a class or function")


def protocol_table(protocol: Protocol = PROTOCOL) -> BenchmarkTable:
    """The table the protocol's env answers from."""
    return load_table(protocol.dataset)


def run_one(
    factory: AgentFactory,
    seed: int,
    budget: int,
    protocol: Protocol = PROTOCOL,
    make_env: Callable[[], gym.Env] | None = None,
) -> dict[str, Any]:
    """One run on ``gym.make(protocol.env_id)`` (or ``make_env()``), as a journal record."""
    env = make_env() if make_env is not None else gym.make(protocol.env_id)
    result = run_search(factory(seed), env, Budget(budget), seed)
    return {
        "agent": result.agent,
        "seed": seed,
        "budget": budget,
        "wall_seconds": result.wall_seconds,
        "invalid_episodes": result.invalid_episodes,
        "history": [
            {"arch": t.arch, "reward": t.reward, "total_seconds": t.total_seconds}
            for t in result.history
        ],
    }


def run_agent(
    name: str,
    factory: AgentFactory,
    runs: int = PROTOCOL.runs,
    budget: int = PROTOCOL.budget,
    journal: Path | None = None,
    protocol: Protocol = PROTOCOL,
    progress: bool = True,
    table: BenchmarkTable | None = None,
    make_env: Callable[[], gym.Env] | None = None,
) -> list[dict[str, Any]]:
    """``runs`` runs of an agent (seeds ``protocol.first_seed, ...``), appended to ``journal``
    (JSON lines) as they finish; runs already there for the same table and budget are kept, so
    an interrupted scoring resumes. ``table`` and ``make_env`` replace the protocol's table and
    env (the benchmark's smoke run on the tests' sample table)."""
    sha256 = sha256_of(Path((table or protocol_table(protocol)).source))
    done = {r["seed"]: r for r in read_journal(journal, name, budget, sha256)} if journal else {}
    records = []
    for seed in tqdm(protocol.seeds(runs), desc=f"{name} runs", disable=not progress):
        if seed not in done:
            record = run_one(factory, seed, budget, protocol, make_env)
            done[seed] = {**record, "table_sha256": sha256}
            done[seed]["agent"] = name
            if journal is not None:
                journal.parent.mkdir(parents=True, exist_ok=True)
                with open(journal, "a") as out:
                    out.write(json.dumps(done[seed]) + "\n")
        records.append(done[seed])
    return records


def read_journal(path: Path, agent: str, budget: int, table_sha256: str) -> list[dict[str, Any]]:
    """The journalled runs of ``agent`` with ``budget`` on the table with ``table_sha256``."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        r
        for r in records
        if r["agent"] == agent and r["budget"] == budget and r.get("table_sha256") == table_sha256
    ]


def to_runs(name: str, records: Sequence[Mapping[str, Any]], table: BenchmarkTable) -> Runs:
    """Journal records of one agent reduced to the leaderboard's :class:`Runs`."""
    histories = [r["history"] for r in records]
    return Runs(
        agent=name,
        seeds=np.array([r["seed"] for r in records]),
        incumbents=np.stack(
            [
                incumbent_curve([t["arch"] for t in h], [t["reward"] for t in h], table)
                for h in histories
            ]
        ),
        seconds=np.array([[t["total_seconds"] for t in h] for h in histories]),
        distinct=np.array([len({t["arch"] for t in h}) for h in histories]),
        wall_seconds=np.array([r["wall_seconds"] for r in records]),
    )


def plot(runs: Mapping[str, Runs], table: BenchmarkTable, path: Path) -> Path:
    """Regret (mean ± s.e. over runs) against evaluations and simulated training seconds."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("the plot needs matplotlib: pip install 'recnas-books[plots]'") from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_n, ax_s) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, r in runs.items():
        curves = regret_curves(r, table)
        mean = curves.mean(0)
        se = curves.std(0, ddof=1) / math.sqrt(len(curves)) if len(curves) > 1 else 0 * mean
        x = np.arange(1, curves.shape[1] + 1)
        (line,) = ax_n.plot(x, mean, label=name)
        ax_n.fill_between(x, mean - se, mean + se, alpha=0.2, color=line.get_color())
        grid = np.logspace(np.log10(r.seconds[:, 0].min()), np.log10(r.seconds.max()), 200)
        at = np.stack(
            [
                c[np.clip(np.searchsorted(s, grid, "right") - 1, 0, None)]
                for c, s in zip(curves, r.seconds, strict=True)
            ]
        )
        ax_s.plot(grid, at.mean(0), label=name, color=line.get_color())
    for ax, label in ((ax_n, "evaluations"), (ax_s, "simulated training seconds")):
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("regret (validation recall@20, seed mean)")
        ax.grid(alpha=0.3)
    ax_n.legend()
    budget = max(r.incumbents.shape[1] for r in runs.values())
    ax_n.set_title(f"{PROTOCOL.env_id}: {len(table)} architectures, budget {budget}, mean ± s.e.")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def compare(
    yours: Mapping[str, Runs], table: BenchmarkTable, with_reference: bool = True
) -> tuple[str, dict[str, Runs]]:
    """The leaderboard of ``yours`` beside the shipped agents' runs (cut to your budget, when it
    is smaller; left out, with a note, when the shipped runs searched another table)."""
    runs, note = dict(yours), ""
    budget = min(r.incumbents.shape[1] for r in yours.values())
    if with_reference:
        reference, sha256 = reference_runs()
        if sha256 != sha256_of(Path(table.source)):
            note = "\n\n(The shipped runs searched another version of the table: not shown.)"
        else:
            for name, r in reference.items():
                if name in yours:
                    continue
                runs[f"{name} (shipped)"] = Runs(
                    f"{name} (shipped)",
                    r.seeds,
                    r.incumbents[:, :budget],
                    r.seconds[:, :budget],
                    r.distinct,
                    r.wall_seconds,
                )
    rows = [score(r, table) for r in runs.values()]
    text = markdown(rows, table)
    if with_reference and not note and budget < PROTOCOL.budget:
        text += (
            "\n\n(The shipped runs are cut to your budget; their distinct architectures and wall "
            "seconds are those of whole runs.)"
        )
    return text + note, runs


def main(argv: Iterable[str] | None = None) -> int:
    """``recnas leaderboard``: run an agent under the protocol and print the leaderboard."""
    parser = argparse.ArgumentParser(
        prog="recnas leaderboard", description=__doc__.split("\n\n")[0]
    )
    add_arguments(parser)
    return run_cli(parser.parse_args(list(argv) if argv is not None else None), parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--agent",
        action="append",
        required=True,
        help="a registered agent or module:attribute (a class or a search function); repeatable",
    )
    parser.add_argument("--runs", type=int, default=PROTOCOL.runs, help="default %(default)s")
    parser.add_argument(
        "--budget",
        type=int,
        default=PROTOCOL.budget,
        help="evaluations per run (default %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("leaderboard"), help="journal, table and plot go here"
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="leave the shipped agents' runs out"
    )


def run_cli(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.runs < 2:
        parser.error(f"--runs must be >= 2 (for a standard error), got {args.runs}")
    if not 1 <= args.budget <= PROTOCOL.budget:
        parser.error(f"--budget must be in 1..{PROTOCOL.budget}, got {args.budget}")
    try:
        agents = [load_agent(spec) for spec in args.agent]
    except ValueError as error:
        parser.error(str(error))
    table = protocol_table()
    yours = {}
    journal = args.out / "runs.jsonl"
    for name, factory in agents:
        records = run_agent(name, factory, args.runs, args.budget, journal)
        yours[name] = to_runs(name, records, table)
    text, runs = compare(yours, table, not args.no_reference)
    (args.out / "leaderboard.md").write_text(text + "\n")
    print(text)
    try:
        print(f"\nplot: {plot(runs, table, args.out / 'leaderboard.png')}")
    except ImportError as error:
        print(f"\nno plot: {error}")
    print(f"journal (resumable): {journal}")
    return 0
