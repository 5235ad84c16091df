"""The final model's commands: ``recnas train`` and ``recnas recommend`` (and the training of
``recnas search --export``), on :mod:`nasenv.export`. Described in docs/final-model.md.

Importing this module does not import torch: training and loading a model do.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym

from nasenv.cli import LIGHTGCN, fail, positive_int
from nasenv.data import DEFAULT_DATASET, BooksDataset, ChecksumError, get_spec, load_dataset
from nasenv.evaluators import FRESH_SEED_START, fresh_seeds
from nasenv.results import FIDELITIES
from nasenv.space import Architecture

DEFAULT_FINAL_SEEDS = fresh_seeds(3)
"""The seeds of a final model (``recnas train``, ``recnas search --export``): those of
:func:`nasenv.export.train_final`, which imports torch."""


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of :func:`train`."""
    parser.add_argument(
        "arch",
        help=f"canonical architecture string (LightGCN-3: {LIGHTGCN}), or the JSON file a "
        "search wrote with --out (its best architecture)",
    )
    parser.add_argument(
        "--dataset", default=DEFAULT_DATASET, help="registered task (default %(default)s)"
    )
    parser.add_argument(
        "--seeds",
        type=positive_int,
        default=len(DEFAULT_FINAL_SEEDS),
        help=f"fresh seeds {FRESH_SEED_START}, {FRESH_SEED_START + 1}, ... (default %(default)s); "
        "the best on validation is kept",
    )
    parser.add_argument("--fidelity", default="converged", choices=list(FIDELITIES))
    parser.add_argument("--threads", type=positive_int, help="torch threads (default: torch's)")
    parser.add_argument("--out", required=True, metavar="MODEL.npz", help="the model file to write")


def add_recommend_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of :func:`recommend`."""
    parser.add_argument("model", metavar="MODEL.npz", help="a model written by recnas train")
    parser.add_argument("--user", required=True, help="raw user id of the model's dataset")
    parser.add_argument("-k", type=positive_int, default=10, help="items (default %(default)s)")
    parser.add_argument(
        "--exclude",
        default="all",
        choices=["all", "train", "none"],
        help="items left out: the user's train, validation and test items (all, the default), "
        "the training items, or none",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def dataset_of(env: gym.Env) -> str | None:
    """The task of a single-task env (its evaluator's dataset), ``None`` on a task set."""
    return getattr(getattr(env.unwrapped, "evaluator", None), "dataset_name", None)


def task(name: str, parser: argparse.ArgumentParser) -> BooksDataset:
    """The registered task ``name``: a bad name is a bad argument, a missing or damaged file a
    failure."""
    try:
        get_spec(name)
    except ValueError as error:
        parser.error(f"--dataset: {error}")
    try:
        return load_dataset(name)
    except (FileNotFoundError, ChecksumError) as error:
        fail(parser.prog, str(error))


def train_and_export(
    arch: Architecture,
    dataset: BooksDataset,
    seeds: Sequence[int],
    fidelity: str,
    threads: int | None,
    out: str,
    parser: argparse.ArgumentParser,
) -> None:
    """Train the final model of ``arch`` (:func:`nasenv.export.train_final`), print its seeds'
    table and write it to ``out``."""
    from nasenv.export import train_final  # imports torch

    try:
        model = train_final(arch, dataset, seeds, FIDELITIES[fidelity], threads=threads)
    except RuntimeError as error:  # every seed diverged
        fail(parser.prog, str(error))
    print(model.summary())
    try:
        model.save(out)
    except OSError as error:
        fail(parser.prog, f"cannot write the model to {out}: {error}")
    print(f"model written to {out}")


def train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``recnas train``: the final model of ``args.arch`` (or of the best architecture of the
    search result file ``args.arch``), written to ``args.out``."""
    try:
        arch = Architecture.from_string(
            best_of(args.arch) if args.arch.endswith(".json") else args.arch
        )
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    if Path(args.out).is_dir():
        parser.error(f"--out {args.out}: a directory; name the model file (model.npz)")
    dataset = task(args.dataset, parser)
    print(dataset.summary())
    seeds = fresh_seeds(args.seeds)
    train_and_export(arch, dataset, seeds, args.fidelity, args.threads, args.out, parser)


def best_of(path: str) -> str:
    """The best architecture of a search's ``--out`` JSON; ``ValueError`` naming the file if it
    has none."""
    try:
        record = json.loads(Path(path).read_text())
        return str(record["best"]["arch"])
    except OSError as error:
        raise ValueError(f"cannot read the search result {path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f"{path} is not a search result with a best architecture (recnas search --out)"
        ) from None


def recommend(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``recnas recommend``: the top-k unseen items of one user, as a table or JSON."""
    from nasenv.export import UnknownUserError, load_model  # imports torch

    try:
        model = load_model(args.model)
    except (FileNotFoundError, ValueError, ChecksumError) as error:
        fail(parser.prog, str(error))
    try:
        found = model.recommend(args.user, k=args.k, exclude=args.exclude)
    except UnknownUserError as error:
        parser.error(f"--user: {error}")
    except ValueError as error:  # k above the number of items
        parser.error(f"-k: {error}")
    ranking = found.ranking(0)
    if args.json:
        record = {"user": found.users.tolist()[0], "dataset": model.dataset_name, "k": args.k}
        print(json.dumps({**record, "exclude": args.exclude, "items": ranking}, indent=1))
        return
    left_out = {"all": "train, validation and test", "train": "train", "none": "none"}
    print(
        f"user {args.user} on {model.dataset_name}: top {len(ranking)} of "
        f"{model.dataset.n_items:,} items (left out: the user's {left_out[args.exclude]} items)"
    )
    print(f"{'rank':>4}  {'item id':12} {'score':>8}  title")
    for row in ranking:
        print(f"{row['rank']:>4}  {row['item_id']:12} {row['score']:>8.4f}  {row['title']}")
