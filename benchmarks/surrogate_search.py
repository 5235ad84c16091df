"""Search the surrogate env, then train the architectures it returned for real.

    python -m benchmarks.surrogate_search     # 4 agents x 3 seeds x 300 evaluations; ~5 min
    python -m benchmarks.surrogate_search --surrogate-version 1 --name surrogate_search_v1

A surrogate benchmark is only as good as the architectures it leads agents to. Each run's best
architecture (by its surrogate reward) is trained live on Books-20core at the tabulation budget
with seed 0, like the trainings the surrogate was fitted on; the report sets the measured
validation Recall@20 against the surrogate's prediction and against the best architecture of the
benchmark table (the core space, seed mean). ``--surrogate-version 1`` searches
``RecNAS-Books-Surrogate-v1`` instead. Trainings are journaled in
``benchmarks/results/NAME.jsonl`` (``--name``, default ``surrogate_search``), so a rerun resumes
(any run reuses a training of the same architecture); the report goes to
``benchmarks/results/NAME.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

import nasenv  # noqa: F401 - registers the ids
from agents import make_agent
from agents.runner import Budget, run_search
from benchmarks.common import RESULTS
from nasenv.space import Architecture
from nasenv.surrogate import SURROGATE_VERSIONS
from nasenv.table import load_table


def searched(agents: list[str], seeds: int, budget: int, version: int = 0) -> list[dict]:
    """One record per run: the agent, seed and best architecture with its surrogate reward, on
    ``RecNAS-Books-Surrogate-v{version}``."""
    runs = []
    for name in agents:
        for seed in range(seeds):
            env = gym.make(f"RecNAS-Books-Surrogate-v{version}")
            result = run_search(make_agent(name, seed=seed), env, Budget(evaluations=budget), seed)
            assert result.best is not None
            runs.append({"agent": name, "seed": seed, "arch": result.best.arch})
    return runs


def train_live(archs: list[str], journal: Path, threads: int) -> dict[str, dict]:
    """Validation Recall@20 and seconds of each architecture trained once (seed 0), resuming
    from ``journal``."""
    import torch
    from tqdm import tqdm

    from nasenv.data import load_dataset
    from nasenv.results import FIDELITIES
    from nasenv.train import TrainingContext, train_architecture

    done = {}
    if journal.exists():
        done = {r["arch"]: r for r in map(json.loads, journal.read_text().splitlines())}
    todo = [a for a in dict.fromkeys(archs) if a not in done]
    if todo:
        torch.set_num_threads(threads)
        ctx = TrainingContext(load_dataset())
        for arch in tqdm(todo, desc="live trainings", unit="run"):
            result = train_architecture(
                Architecture.from_string(arch), ctx, 0, FIDELITIES["tabulation"]
            )
            record = {
                "arch": arch,
                "status": result.status,
                "val_recall": result.val_recall_best if result.ok else 0.0,
                "seconds": result.epoch_seconds[-1] if result.epoch_seconds else 0.0,
            }
            with journal.open("a") as out:
                out.write(json.dumps(record) + "\n")
            done[arch] = record
    return done


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.surrogate_search", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--agents", nargs="+", default=["random", "evolution", "reinforce", "qlearning"]
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of a training")
    parser.add_argument(
        "--surrogate-version",
        type=int,
        choices=SURROGATE_VERSIONS,
        default=0,
        help="the env id's version",
    )
    parser.add_argument(
        "--name", default="surrogate_search", help="the report is benchmarks/results/NAME.md"
    )
    args = parser.parse_args()

    from nasenv.surrogate import load_surrogate

    surrogate = load_surrogate(version=args.surrogate_version)
    runs = searched(args.agents, args.seeds, args.budget, args.surrogate_version)
    measured = train_live([r["arch"] for r in runs], RESULTS / f"{args.name}.jsonl", args.threads)
    table = load_table()
    scores = table.scores()
    table_best = table.arch(int(np.argmax(scores))).to_string()
    lines = [
        "| agent | seed | best architecture found on the surrogate | predicted | measured |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        predicted = surrogate.predict([Architecture.from_string(run["arch"])])[0]
        run.update(predicted=float(predicted), measured=measured[run["arch"]]["val_recall"])
        lines.append(
            f"| {run['agent']} | {run['seed']} | `{run['arch']}` | {predicted:.4f} | "
            f"{run['measured']:.4f} |"
        )
    found = np.array([r["measured"] for r in runs])
    predicted_all = np.array([r["predicted"] for r in runs])
    summary = (
        f"\n{len(runs)} runs, {len(set(r['arch'] for r in runs))} distinct architectures. "
        f"Measured validation Recall@20: median {np.median(found):.4f}, best {found.max():.4f}; "
        f"predicted median {np.median(predicted_all):.4f}. Best of the table (core space, seed "
        f"mean): {scores.max():.4f} (`{table_best}`); {int((found > scores.max()).sum())} of "
        f"{len(runs)} runs found an architecture measured above it.\n"
    )
    report = "\n".join(lines) + "\n" + summary
    (RESULTS / f"{args.name}.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
