"""Command line: ``python -m nasenv {evaluate,datasets,space}``.

python -m nasenv evaluate                       # LightGCN-3 on Books-20core
python -m nasenv evaluate "layers=sage:max-gcn,combine=concat,dim=64,items=id+text,..."
python -m nasenv datasets                       # the registered book tasks
python -m nasenv space                          # slots, choices and space sizes
"""

from __future__ import annotations

import argparse
import json

import torch
from tqdm import tqdm

from nasenv.data import DATASETS, DEFAULT_DATASET, load_dataset
from nasenv.space import CORE, FULL, SLOTS, Architecture
from nasenv.train import TrainConfig, TrainingContext, train_architecture

LIGHTGCN = "layers=lgconv-lgconv-lgconv,combine=mean,dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001"


def evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    try:
        arch = Architecture.from_string(args.arch)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset)
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
    print(
        f"wall seconds   {result.epoch_seconds[-1]:.1f}   parameters {result.n_params:,}   "
        f"inference {result.inference_ms:.0f} ms"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result.to_dict(), handle, indent=1)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of :func:`evaluate` (shared with ``recnas evaluate``)."""
    parser.add_argument("arch", nargs="?", default=LIGHTGCN, help="canonical architecture string")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, choices=sorted(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=TrainConfig.max_epochs)
    parser.add_argument("--patience", type=int, default=TrainConfig.patience)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the full result (curves included) here")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m nasenv", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ev = commands.add_parser("evaluate", help="train one architecture and print its metrics")
    add_evaluate_arguments(ev)
    commands.add_parser("datasets", help="list the registered book tasks")
    commands.add_parser("space", help="describe the search space")
    args = parser.parse_args()
    if args.command == "evaluate":
        evaluate(args, parser)
    elif args.command == "datasets":
        for name, spec in DATASETS.items():
            print(f"{name:20} k={spec.k:<3} {spec.description}")
    else:
        for slot in SLOTS:
            print(f"{slot.name:8} {list(slot.choices)}  - {slot.doc}")
        print(f"full space: {len(FULL):,} architectures; core (tabulated): {len(CORE):,}")


if __name__ == "__main__":
    main()
