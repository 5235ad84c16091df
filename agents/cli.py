"""The ``recnas`` command: run a search, evaluate an architecture, train and serve the final
model, list the agents.

recnas search --agent reinforce --budget 300 --seed 0
recnas search --agent reinforce --set avoid_repeats=true --set learning_rate=0.005
recnas search --agent evolution --budget 100 --env-id RecNAS-Books-Live-v0 --fidelity low
recnas search --env-id RecNAS-Books-Surrogate-v0 --budget 300 --fresh-seeds 2   # then measured
recnas search --agent evolution --workers 16 --seconds 3600   # 16 simulated workers on the table
recnas search --agent tpe --workers 2 --budget 20 --env-id RecNAS-Books-Live-v0   # 2 processes
recnas search --workers 8 --env-id RecNAS-Books-Live-v0 --ray-address auto   # 8 Ray tasks
recnas search --agent evolution --budget 300 --export model.npz   # then trains the final model
recnas evaluate "layers=lgconv-lgconv-lgconv,combine=mean,dim=64,items=id,loss=bpr,..."
recnas train "layers=lgconv-lgconv-lgconv,combine=mean,..." --seeds 3 --out model.npz
recnas recommend model.npz --user 243 -k 10
recnas data import ratings.csv --name my-shop --items items.csv --text-col title
recnas agents

Bad arguments, a missing optional package and Ctrl-C end with one line on stderr and a non-zero
exit status (2: a bad argument; 1: a missing package or file; 130: interrupted, after the best
architecture found so far), never a traceback. A search on the table or surrogate back end
with an agent that needs no neural network (random, evolution, qlearning, tpe) never imports
torch: only training (``--fresh-seeds`` and ``--export`` included) and the neural agents do.
``train``, ``recommend`` and ``search --export`` are described in docs/final-model.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import inspect
import json
import os
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
from agents import AGENTS, agent_class, leaderboard, make_agent, unavailable
from agents.final_model import (
    DEFAULT_FINAL_SEEDS,
    add_recommend_arguments,
    add_train_arguments,
    dataset_of,
    recommend,
    task,
    train,
    train_and_export,
)
from agents.parallel import ParallelResult, run_parallel
from agents.runner import Budget, SearchResult, Trial, run_search
from nasenv.allocator import keep_freed_memory
from nasenv.cli import (
    CLIParser,
    add_data_command,
    add_evaluate_arguments,
    data_command,
    evaluate,
    fail,
    interrupted,
    non_negative_int,
    positive_float,
    positive_int,
)
from nasenv.data import ChecksumError
from nasenv.env import SEED_POLICIES
from nasenv.evaluators import FRESH_SEED_START, fresh_seeds
from nasenv.results import METRICS
from nasenv.space import Architecture

PROG = "recnas"
LIVE_ENV_ID = "RecNAS-Books-Live-v0"
SURROGATE_ENV_ID = "RecNAS-Books-Surrogate-v0"
FRESH_SEED_BACKENDS = ("live", "surrogate")
"""Back ends whose best architecture ``--fresh-seeds`` can train anew (the surrogate's through
the live back end); the table cannot train."""


def _summary_writer_class(prog: str) -> Any:
    """TensorBoard's ``SummaryWriter`` (imports torch), or a one-line failure if tensorboard is
    not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard itself is missing
        fail(
            prog,
            "--tensorboard needs the tensorboard package: pip install tensorboard "
            "(or pip install 'recnas-books[rl]')",
        )
    return SummaryWriter


def hyperparameters(name: str, settings: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` overrides of agent ``name``'s hyperparameters, each value parsed as the
    hyperparameter's declared type (``true``/``false`` for flags)."""
    cls = agent_class(name)
    types = typing.get_type_hints(cls)
    fields: tuple[dataclasses.Field[Any], ...] = ()
    if dataclasses.is_dataclass(cls):
        fields = dataclasses.fields(cls)
    settable = sorted(f.name for f in fields if f.name != "seed" and f.repr)
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


def _check_search_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse, through ``parser.error``, argument combinations the env cannot honour."""
    backend = gym.spec(args.env_id).kwargs.get("backend")
    if args.fresh_seeds and backend not in FRESH_SEED_BACKENDS:
        parser.error(
            f"--fresh-seeds {args.fresh_seeds}: the {backend} back end ({args.env_id}) cannot "
            f"train new seeds; use --env-id {LIVE_ENV_ID} (or {SURROGATE_ENV_ID}, whose best "
            "architecture --fresh-seeds trains for real)"
        )
    if args.ray_address and backend != "live":
        parser.error(f"--ray-address trains for real: use --env-id {LIVE_ENV_ID}")
    if args.ray_address and importlib.util.find_spec("ray") is None:
        fail(parser.prog, "--ray-address needs Ray: pip install 'recnas-books[distributed]'")
    if args.workers > 1 and args.fresh_seeds:
        parser.error("--fresh-seeds is for one worker: train the best afterwards instead")
    if args.export and Path(args.export).is_dir():
        parser.error(f"--export {args.export}: a directory; name the model file (model.npz)")


def search(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Run ``args.agent`` against ``args.env_id`` with a progress bar and print the result
    (``parser``: the ``search`` subparser, for errors). Ctrl-C prints the best architecture found
    so far on stderr and exits with status 130."""
    _check_search_arguments(args, parser)
    missing = unavailable(args.agent)
    if missing is not None:
        fail(parser.prog, f"the {args.agent} agent {missing}")
    settings = hyperparameters(args.agent, args.set)
    try:
        agent = make_agent(args.agent, seed=args.seed, **settings)
    except ValueError as error:  # hyperparameters the agent refuses together
        fail(parser.prog, f"--set: {error}")
    writer_class = _summary_writer_class(parser.prog) if args.tensorboard else None
    env_kwargs: dict[str, Any] = {}
    if args.metric:
        env_kwargs["metric"] = args.metric
    if args.seed_policy:
        env_kwargs["seed_policy"] = args.seed_policy
    if args.dataset:
        env_kwargs["dataset"] = args.dataset
    if args.fidelity:
        env_kwargs["fidelity"] = args.fidelity
    try:
        env = gym.make(args.env_id, **env_kwargs)
    except FileNotFoundError as error:  # no table for this task
        fail(parser.prog, f"{error}; or search with live training: --env-id {LIVE_ENV_ID}")
    except ValueError as error:  # an argument value the env does not know, with allowed ones
        fail(parser.prog, str(error))
    except ChecksumError as error:  # a shipped file that was changed or damaged
        fail(parser.prog, str(error))
    export_dataset = dataset_of(env)
    if args.export and export_dataset is None:
        parser.error(f"--export needs an env of one task; {args.env_id} has none")
    budget = Budget(evaluations=args.budget, seconds=args.seconds)
    writer = writer_class(args.tensorboard) if writer_class is not None else None
    best: Trial | None = None
    evaluations = 0
    trials: list[Trial] = []
    try:
        with tqdm(total=args.budget, desc=f"{args.agent} search", unit="eval") as bar:

            def on_trial(trial: Trial, clock: float | None = None) -> None:
                """``clock``: the parallel search's clock at its finish (default: the running
                sum of the evaluations' seconds, the clock of one worker)."""
                nonlocal best, evaluations
                evaluations += 1
                trials.append(trial)
                if best is None or trial.reward > best.reward:  # the earliest among ties
                    best = trial
                bar.update(1)
                hours = (trial.total_seconds if clock is None else clock) / 3600
                bar.set_postfix(best=f"{best.reward:.4f}", sim_hours=f"{hours:.2f}")
                if writer is not None:
                    for tag, value, step in _scalars(trial, best):
                        writer.add_scalar(tag, value, step)

            fresh = fresh_seeds(args.fresh_seeds) if args.fresh_seeds else None
            if fresh:  # trainings after the progress bar: say so before it
                print(
                    f"{parser.prog}: after the search, {len(fresh)} real training(s) of the best "
                    f"architecture (seeds {fresh[0]}..{fresh[-1]}, live back end) measure its "
                    "test metrics",
                    file=sys.stderr,
                )
            result: SearchResult | ParallelResult
            if args.workers > 1 or args.ray_address:
                result = run_parallel(
                    agent,
                    env,
                    budget,
                    args.workers,
                    args.seed,
                    on_finished=lambda done: on_trial(done.trial, done.finish),
                    ray_address=args.ray_address,
                )
            else:
                result = run_search(agent, env, budget, args.seed, on_trial, fresh_seeds=fresh)
    except KeyboardInterrupt:
        if args.out:  # nothing lost: the evaluations made so far, marked interrupted
            partial = {
                "agent": args.agent,
                "seed": args.seed,
                "interrupted": True,
                "best": dataclasses.asdict(best) if best is not None else None,
                "history": [dataclasses.asdict(t) for t in trials],
            }
            Path(args.out).write_text(json.dumps(partial, indent=1))
        interrupted(parser.prog, _best_so_far(best, evaluations))
    finally:
        if writer is not None:
            writer.close()
    print(result.summary())
    if args.out:
        Path(args.out).write_text(json.dumps(result.to_dict(), indent=1))
        print(f"history written to {args.out}")
    if args.export and export_dataset is not None and result.best is not None:
        print(
            f"{parser.prog}: training the final model of the best architecture for real "
            f"(seeds {DEFAULT_FINAL_SEEDS[0]}..{DEFAULT_FINAL_SEEDS[-1]}, converged budget)",
            file=sys.stderr,
        )
        arch = Architecture.from_string(result.best.arch)
        dataset = task(export_dataset, parser)
        train_and_export(arch, dataset, DEFAULT_FINAL_SEEDS, "converged", None, args.export, parser)


def _scalars(trial: Trial, best: Trial) -> list[tuple[str, float, int]]:
    """TensorBoard ``(tag, value, step)`` of one evaluation: ``reward``, ``best_reward`` (by
    evaluation) and ``best_reward_by_seconds``; on a surrogate, whose rewards are predictions,
    ``predicted_reward``, ``best_predicted_reward`` and ``best_predicted_reward_by_seconds``."""
    kind = "predicted_reward" if trial.predicted else "reward"
    return [
        (kind, trial.reward, trial.number),
        (f"best_{kind}", best.reward, trial.number),
        (f"best_{kind}_by_seconds", best.reward, int(trial.total_seconds)),
    ]


def _best_so_far(best: Trial | None, evaluations: int) -> str:
    """The tail of the interrupted line: the best of ``evaluations`` so far."""
    if best is None:
        return " before any architecture was evaluated"
    predicted = "predicted " if best.predicted else ""
    return (
        f" after {evaluations} evaluations; best so far (evaluation {best.number}): {best.arch}"
        f"  {predicted}validation Recall@20 {best.val_recall:.4f}, NDCG@20 {best.val_ndcg:.4f}"
    )


def list_agents() -> None:
    """Every agent with the first paragraph of its module's docstring (of its class's, where a
    module holds several agents)."""
    modules = Counter(path.partition(":")[0] for path in AGENTS.values())
    for name, path in AGENTS.items():
        missing = unavailable(name)
        if missing is None:
            try:
                cls = agent_class(name)
            except ImportError as error:  # a requirement that imports but is broken
                missing = str(error)
        if missing is not None:
            print(f"{name:10} (unavailable here: {missing})")
            continue
        source = cls if modules[path.partition(":")[0]] > 1 else sys.modules[cls.__module__]
        summary = " ".join((inspect.getdoc(source) or "").split("\n\n")[0].split())
        print(textwrap.fill(summary, 100, initial_indent=f"{name:11}", subsequent_indent=" " * 11))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``)."""
    parser = CLIParser(prog=PROG, description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("search", help="run an agent against the environment")
    s.add_argument("--agent", default="random", choices=list(AGENTS))
    s.add_argument(
        "--budget", type=positive_int, default=300, help="evaluations, >= 1 (default 300)"
    )
    s.add_argument(
        "--seconds",
        type=positive_float,
        help="also stop after this much simulated training (with --workers: on the clock, "
        "no evaluation starts later)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="evaluations at once (default 1): simulated workers on the table, training "
        "processes of one thread each on the live back end; agents without ask and tell "
        "(see docs/agents.md) still run one at a time",
    )
    s.add_argument("--env-id", default="RecNAS-Books-v0", choices=list(nasenv.ENV_IDS))
    s.add_argument(
        "--ray-address",
        help=f"run the --workers trainings as Ray tasks on this cluster ('auto': the running "
        f"one; 'local': a new local instance) (needs ray; --env-id {LIVE_ENV_ID} only)",
    )
    s.add_argument("--dataset", help="registered task (default: the env's)")
    s.add_argument("--fidelity", help="training budget name (default: the env's)")
    s.add_argument("--metric", choices=list(METRICS), help="default: the env's (recall)")
    s.add_argument(
        "--seed-policy",
        choices=list(SEED_POLICIES),
        help="default: the env id's (RecNAS-Books-v0: random, the leaderboard's protocol; "
        "the other ids: fixed)",
    )
    s.add_argument(
        "--fresh-seeds",
        type=non_negative_int,
        default=0,
        help="report the best architecture's test metrics from this many new trainings "
        f"(seeds {FRESH_SEED_START}, {FRESH_SEED_START + 1}, ...): on --env-id {LIVE_ENV_ID}, "
        f"or on {SURROGATE_ENV_ID}, where they measure for real (live back end, tabulation "
        "budget) what the surrogate predicted; default: the evaluation seeds (the surrogate: "
        "its prediction only)",
    )
    s.add_argument("--out", help="write the result and full history as JSON here")
    s.add_argument(
        "--export",
        metavar="MODEL.npz",
        help="after the search, train the best architecture for real (any back end; seeds "
        f"{FRESH_SEED_START}-{FRESH_SEED_START + 2}, converged budget) and write the final "
        "model here (as recnas train does)",
    )
    s.add_argument(
        "--tensorboard",
        help="log every evaluation to this TensorBoard directory (needs tensorboard)",
    )
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one of the agent's hyperparameters (repeatable; see its docstring)",
    )
    ev = commands.add_parser("evaluate", help="train one architecture and print its metrics")
    add_evaluate_arguments(ev)
    tr = commands.add_parser(
        "train", help="train the final model of an architecture with fresh seeds and export it"
    )
    add_train_arguments(tr)
    rec = commands.add_parser("recommend", help="the top-k unseen items of a user, by a model")
    add_recommend_arguments(rec)
    data = add_data_command(commands)
    commands.add_parser("agents", help="list the agents (and what those unavailable here need)")
    board = commands.add_parser(
        "leaderboard",
        help="score an agent on the leaderboard's protocol, beside the shipped agents",
        description=leaderboard.__doc__.split("\n\n")[0],
    )
    leaderboard.add_arguments(board)
    args = parser.parse_args(argv)
    keep_freed_memory()  # this command's own process (see nasenv.allocator)
    try:
        if args.command == "search":
            search(args, s)
        elif args.command == "evaluate":
            evaluate(args, ev)
        elif args.command == "train":
            train(args, tr)
        elif args.command == "recommend":
            recommend(args, rec)
        elif args.command == "data":
            data_command(args, data)
        elif args.command == "leaderboard":
            leaderboard.run_cli(args, board)
        else:
            list_agents()
        sys.stdout.flush()  # inside the try: a closed pipe fails here, not at exit
    except KeyboardInterrupt:  # outside a search's own handler: nothing to report
        interrupted(parser.prog)
    except BrokenPipeError:  # the reader left (recnas agents | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
