"""The ``recnas`` command: run a search, evaluate an architecture, list the agents.

recnas search --agent reinforce --budget 300 --seed 0
recnas search --agent reinforce --set avoid_repeats=true --set learning_rate=0.005
recnas search --agent evolution --budget 100 --env-id RecNAS-Books-Live-v0 --fidelity low
recnas evaluate "layers=lgconv-lgconv-lgconv,combine=mean,dim=64,items=id,loss=bpr,..."
recnas agents
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
import textwrap
import typing
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
from tqdm import tqdm

import nasenv
from agents import AGENTS, agent_class, make_agent
from agents.runner import Budget, Trial, run_search
from nasenv.__main__ import add_evaluate_arguments, evaluate


def _tensorboard(directory: str | None) -> Any:
    if directory is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:  # tensorboard itself is missing
        raise SystemExit(f"--tensorboard needs the tensorboard package: {error}") from error
    return SummaryWriter(directory)


def hyperparameters(name: str, settings: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` overrides of agent ``name``'s hyperparameters, each value parsed as the
    hyperparameter's declared type (``true``/``false`` for flags)."""
    cls = agent_class(name)
    types = typing.get_type_hints(cls)
    settable = sorted(f.name for f in dataclasses.fields(cls) if f.name != "seed" and f.repr)
    kinds = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    out: dict[str, Any] = {}
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep or key not in settable:
            raise SystemExit(
                f"--set {setting!r}: expected NAME=VALUE with NAME one of {name}'s "
                f"hyperparameters {settable}"
            )
        kind = types[key]
        if kind not in kinds:
            raise SystemExit(f"--set {key}: a {kind} is not settable from the command line")
        try:
            if kind is bool:
                if text.lower() not in ("true", "false"):
                    raise ValueError(text)
                out[key] = text.lower() == "true"
            else:
                out[key] = kind(text)
        except ValueError:
            raise SystemExit(
                f"--set {setting!r}: {key} must be {kinds[kind]}, got {text!r}"
            ) from None
    return out


def search(args: argparse.Namespace) -> None:
    env_kwargs: dict[str, Any] = {"metric": args.metric, "seed_policy": args.seed_policy}
    if args.dataset:
        env_kwargs["dataset"] = args.dataset
    if args.fidelity:
        env_kwargs["fidelity"] = args.fidelity
    try:
        env = gym.make(args.env_id, **env_kwargs)
    except FileNotFoundError as error:  # no table for this task
        raise SystemExit(
            f"{error}; or search with live training: --env-id RecNAS-Books-Live-v0"
        ) from None
    except ValueError as error:  # an argument value the env does not know, with allowed ones
        raise SystemExit(str(error)) from None
    budget = Budget(evaluations=args.budget, seconds=args.seconds)
    agent = make_agent(args.agent, seed=args.seed, **hyperparameters(args.agent, args.set))
    writer = _tensorboard(args.tensorboard)
    best = -float("inf")
    with tqdm(total=args.budget, desc=f"{args.agent} search", unit="eval") as bar:

        def on_trial(trial: Trial) -> None:
            nonlocal best
            best = max(best, trial.reward)
            bar.update(1)
            bar.set_postfix(best=f"{best:.4f}", sim_hours=f"{trial.total_seconds / 3600:.2f}")
            if writer is not None:
                writer.add_scalar("reward", trial.reward, trial.number)
                writer.add_scalar("best_reward", best, trial.number)
                writer.add_scalar("best_reward_by_seconds", best, int(trial.total_seconds))

        fresh = range(1000, 1000 + args.fresh_seeds) if args.fresh_seeds else None
        result = run_search(agent, env, budget, args.seed, on_trial, fresh_seeds=fresh)
    if writer is not None:
        writer.close()
    print(result.summary())
    if args.out:
        Path(args.out).write_text(json.dumps(result.to_dict(), indent=1))
        print(f"history written to {args.out}")


def list_agents() -> None:
    """Every agent with the first paragraph of its module's docstring (of its class's, where a
    module holds several agents)."""
    modules = Counter(path.partition(":")[0] for path in AGENTS.values())
    for name, path in AGENTS.items():
        try:
            cls = agent_class(name)
        except ImportError as error:
            print(f"{name:10} (unavailable: {error})")
            continue
        source = cls if modules[path.partition(":")[0]] > 1 else sys.modules[cls.__module__]
        summary = " ".join((inspect.getdoc(source) or "").split("\n\n")[0].split())
        print(textwrap.fill(summary, 100, initial_indent=f"{name:11}", subsequent_indent=" " * 11))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="recnas", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("search", help="run an agent against the environment")
    s.add_argument("--agent", default="random", choices=list(AGENTS))
    s.add_argument("--budget", type=int, default=300, help="evaluations (default 300)")
    s.add_argument("--seconds", type=float, help="also stop after this much simulated training")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--env-id", default="RecNAS-Books-v0", choices=list(nasenv.ENV_IDS))
    s.add_argument("--dataset", help="registered task (default: the env's)")
    s.add_argument("--fidelity", help="training budget name (default: the env's)")
    s.add_argument("--metric", default="recall", choices=["recall", "ndcg"])
    s.add_argument("--seed-policy", default="fixed", choices=["fixed", "random", "mean"])
    s.add_argument(
        "--fresh-seeds",
        type=int,
        default=0,
        help="report the best architecture's test metrics from this many new trainings "
        "(seeds 1000, 1001, ...; live back end); default: the evaluation seeds",
    )
    s.add_argument("--out", help="write the result and full history as JSON here")
    s.add_argument("--tensorboard", help="log every evaluation to this TensorBoard directory")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one of the agent's hyperparameters (repeatable; see its docstring)",
    )
    ev = commands.add_parser("evaluate", help="train one architecture and print its metrics")
    add_evaluate_arguments(ev)
    commands.add_parser("agents", help="list the agents")
    args = parser.parse_args(argv)
    if args.command == "search":
        search(args)
    elif args.command == "evaluate":
        evaluate(args, ev)
    else:
        list_agents()


if __name__ == "__main__":
    main()
