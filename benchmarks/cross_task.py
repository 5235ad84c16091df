"""How alike are the book tasks? Rank correlation of architecture quality between every pair of
task tables, and how the best architecture of one task does on another.

    python -m benchmarks.cross_task              # every task with a shipped table
    python -m benchmarks.cross_task --sample     # the two sample tables (nasenv.testing)

For tasks A and B (tables over the same space): Spearman and Kendall tau between their seed-mean
validation Recall@20 over the architectures; and, for A's best architecture, its rank on B, its
regret on B (B's best score minus its score) and how many of its 12 decisions differ from B's best.
Writes ``benchmarks/results/cross_task-<name>.json``, a heatmap ``.png`` and prints markdown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, sample_table
from nasenv.surrogate import kendall_tau, spearman
from nasenv.table import BenchmarkTable, shipped_tables
from nasenv.testing import SAMPLE_TASKS


def compare(tables: dict[str, BenchmarkTable]) -> dict:
    names = list(tables)
    archs = tables[names[0]].arch_strings
    for name, table in tables.items():
        if table.arch_strings != archs:
            raise ValueError(f"the {name} table holds other architectures than {names[0]}'s")
    scores = {name: table.scores() for name, table in tables.items()}
    n = len(names)
    rho, tau = np.eye(n), np.eye(n)
    transfer = []
    for i, a in enumerate(names):
        best_a = int(np.argmax(scores[a]))
        for j, b in enumerate(names):
            if i != j:
                rho[i, j] = spearman(scores[a], scores[b])
                tau[i, j] = kendall_tau(scores[a], scores[b])
                best_b = int(np.argmax(scores[b]))
                ours, theirs = tables[a].arch(best_a), tables[b].arch(best_b)
                transfer.append(
                    {
                        "from": a,
                        "to": b,
                        "arch": archs[best_a],
                        "rank_on_target": int((scores[b] > scores[b][best_a]).sum()) + 1,
                        "regret_on_target": float(scores[b][best_b] - scores[b][best_a]),
                        "decisions_differing": sum(
                            x != y
                            for x, y in zip(ours.decisions(), theirs.decisions(), strict=True)
                        ),
                    }
                )
    return {
        "tasks": names,
        "architectures": len(archs),
        "seeds": {name: list(t.seeds) for name, t in tables.items()},
        "best": {name: archs[int(np.argmax(s))] for name, s in scores.items()},
        "spearman": rho.tolist(),
        "kendall_tau": tau.tolist(),
        "transfer": transfer,
    }


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, rho = result["tasks"], np.array(result["spearman"])
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 3, 1.1 * len(names) + 2))
    image = ax.imshow(rho, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            color = "white" if abs(rho[i, j]) > 0.7 else "black"
            ax.text(j, i, f"{rho[i, j]:.2f}", ha="center", va="center", fontsize=9, color=color)
    fig.colorbar(image, ax=ax, label="Spearman of validation Recall@20")
    ax.set_title(f"architecture ranking agreement ({result['architectures']} architectures)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def markdown(result: dict) -> str:
    names = result["tasks"]
    lines = [
        "Spearman (upper) and Kendall tau (lower) between tasks' seed-mean validation Recall@20:",
        "",
        f"| | {' | '.join(names)} |",
        f"| --- |{' --- |' * len(names)}",
    ]
    for i, a in enumerate(names):
        cells = [
            "-" if i == j else
            f"{result['spearman'][i][j] if j > i else result['kendall_tau'][i][j]:.3f}"
            for j in range(len(names))
        ]  # fmt: skip
        lines.append(f"| {a} | {' | '.join(cells)} |")
    lines += [
        "",
        "| best of | on | its rank there | regret there | decisions differing from that best |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in result["transfer"]:
        lines.append(
            f"| {row['from']} | {row['to']} | {row['rank_on_target']} | "
            f"{row['regret_on_target']:.4f} | {row['decisions_differing']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cross_task", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sample", action="store_true", help="the two sample tables")
    args = parser.parse_args()
    tables = {n: sample_table(n) for n in SAMPLE_TASKS} if args.sample else shipped_tables()
    if len(tables) < 2:
        raise SystemExit(f"need tables of at least two tasks, found {list(tables)}")
    result = compare(tables)
    name = "sample" if args.sample else "tasks"
    (RESULTS / f"cross_task-{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, RESULTS / f"cross_task-{name}.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
