"""Our LightGCN-equivalent architecture against ``torch_geometric.nn.models.LightGCN``.

    python -m benchmarks.lightgcn_vs_pyg            # Books-20core, 2 threads, same process

PyG's model is trained the PyG way on its fastest CPU route: a pre-normalised CSR adjacency
(``LGConv(normalize=False)``), mini-batches of 2,048 positives with one uniform negative each,
``LightGCN.recommendation_loss`` (BPR + ``lambda_reg`` 1e-4), Adam 5e-3, as in PyG's
``examples/lightgcn.py`` and the LightGCN paper. Ours is
``layers=lgconv-lgconv-lgconv,combine=mean,dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001`` with
``nasenv.train``'s protocol (batches of 16,384). Both use the same split, negative sampler and
full-ranking validation evaluator every epoch, in one process on the same machine; the clock
includes validation. Reported: seconds per epoch and wall seconds until validation Recall@20 first
reaches a target both runs reach.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch_geometric.nn.models import LightGCN

from benchmarks.common import RESULTS
from nasenv.data import load_dataset
from nasenv.results import TrainConfig
from nasenv.space import Architecture
from nasenv.train import TrainingContext, train_architecture

OURS = "layers=lgconv-lgconv-lgconv,combine=mean,dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001"


def train_pyg(context: TrainingContext, epochs: int, seed: int, stop_at: float) -> list[tuple]:
    """PyG LightGCN; returns ``(epoch, wall seconds, val recall)`` per epoch."""
    torch.manual_seed(seed)
    graph = context.graph
    model = LightGCN(graph.n_nodes, embedding_dim=64, num_layers=3)
    for conv in model.convs:
        conv.normalize = False
    adj = graph.norm
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    generator = torch.Generator().manual_seed(seed)
    n_users = graph.n_users
    history, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        for batch in torch.randperm(len(context.train), generator=generator).split(2048):
            users, items = context.train[batch, 0], context.train[batch, 1]
            negatives = context.sampler(users, generator)
            embedding = model.get_embedding(adj)
            u = embedding[users]
            pos = (u * embedding[n_users + items]).sum(-1)
            neg = (u * embedding[n_users + negatives]).sum(-1)
            node_id = torch.cat([users, n_users + items, n_users + negatives])
            loss = model.recommendation_loss(pos, neg, node_id=node_id, lambda_reg=1e-4)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            embedding = model.get_embedding(adj)
        val = context.val_eval(embedding[:n_users], embedding[n_users:]).recall
        history.append((epoch, time.perf_counter() - start, val))
        print(f"pyg epoch {epoch}: {history[-1][1]:.1f} s, val Recall@20 {val:.4f}", flush=True)
        if val >= stop_at:
            break
    return history


def first_reach(history: list[tuple], target: float) -> float:
    """Seconds at the first epoch of ``history`` whose validation score reaches ``target``."""
    seconds = next((seconds for _, seconds, val in history if val >= target), None)
    if seconds is None:
        raise ValueError(f"validation Recall@20 never reached {target:.4f}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.lightgcn_vs_pyg", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", default="Books-20core")
    parser.add_argument("--target", type=float, default=0.095)
    parser.add_argument("--pyg-epochs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    context = TrainingContext(load_dataset(args.dataset))

    ours = train_architecture(
        Architecture.from_string(OURS), context, seed=0, config=TrainConfig(100, patience=10)
    )
    ours_history = list(zip(range(1, 1000), ours.epoch_seconds, ours.val_recall, strict=False))
    target = min(args.target, ours.val_recall_best)
    pyg = train_pyg(context, args.pyg_epochs, seed=0, stop_at=target)
    target = min(target, max(v for *_, v in pyg))
    t_ours, t_pyg = first_reach(ours_history, target), first_reach(pyg, target)
    lines = [
        f"dataset {args.dataset}, {args.threads} threads, target val Recall@20 {target:.4f}",
        f"ours: {ours.epoch_seconds[-1] / len(ours.val_recall):.2f} s/epoch, best val "
        f"{ours.val_recall_best:.4f} at epoch {ours.best_epoch}, reached target after "
        f"{t_ours:.1f} s",
        f"PyG LightGCN (CSR): {pyg[-1][1] / len(pyg):.2f} s/epoch, best val "
        f"{max(v for *_, v in pyg):.4f}, reached target after {t_pyg:.1f} s",
        f"wall-time ratio ours / PyG: {t_ours / t_pyg:.3f}",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lightgcn_vs_pyg.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
