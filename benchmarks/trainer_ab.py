"""The trainer's speed, paired: one commit against the working tree, on the same machine.

    python -m benchmarks.trainer_ab --base HEAD            # 30 archs, Books-20core, ~15 min
    python -m benchmarks.trainer_ab --base HEAD --archs 4  # a smoke run
    python -m benchmarks.trainer_ab --base HEAD --sample gat --archs 10   # attention layers

The architectures are ``benchmarks/eval_speed.py``'s sample (the 30 random core architectures
of its converged runs, ``benchmarks/results/eval_speed.jsonl``), each trained once with seed 0
at the tabulation budget by two worker processes: one importing ``nasenv`` from a checkout of
``--base`` (a git worktree in a temporary folder), one from this tree. They take turns, one
training at a time, the order swapped every architecture, so that both see the same machine.
``--sample gat`` takes instead the first architectures with a ``gat`` layer of the first
full-space draw (:data:`GAT_BUILD`, in its plan's order): the core space has no attention layer.
Reported per side: the median charged seconds of an evaluation (``TrainResult.cost_seconds``),
the median epochs, the median seconds per epoch, how far the two sides' validation Recall@20
curves are apart (a change of numerics shows here; the seed spread of a table is the
yardstick), and each side's Spearman against the converged runs (the fidelity
``eval_speed.py`` measures).

Results: ``benchmarks/results/trainer_ab-<base>-<threads>t[-gat].{jsonl,md}`` (the base's
short hash). The journal keeps every pair with the commit the working tree was on (``head``, ``+``
when it had changes), and a rerun with the same base, threads and working tree trains only the
missing ones.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _serve(dataset: str, threads: int) -> None:
    """Worker: read one architecture a line, train it, write its result as one JSON line."""
    import torch

    from nasenv.allocator import keep_freed_memory
    from nasenv.data import load_dataset
    from nasenv.results import FIDELITIES
    from nasenv.space import Architecture
    from nasenv.train import TrainingContext, train_architecture

    keep_freed_memory()  # as the table builder's workers do
    torch.set_num_threads(threads)
    context = TrainingContext(load_dataset(dataset))
    print("ready", flush=True)
    for line in sys.stdin:
        arch = Architecture.from_string(line.strip())
        result = train_architecture(arch, context, 0, FIDELITIES["tabulation"])
        record = {
            "status": result.status,
            "cost_seconds": result.cost_seconds,
            "epochs": len(result.val_recall),
            "val_recall": list(result.val_recall),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        }
        print(json.dumps(record), flush=True)


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


class _Worker:
    """A serving process whose ``nasenv`` comes from ``tree``."""

    def __init__(self, tree: Path, dataset: str, threads: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        command = [sys.executable, str(Path(__file__).resolve()), "--serve"]
        command += ["--dataset", dataset, "--threads", str(threads)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the worker on {tree} did not start")

    def train(self, arch: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(arch + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker died training {arch!r}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


EVAL_SPEED = ROOT / "benchmarks" / "results" / "eval_speed.jsonl"
"""The journal of ``benchmarks/eval_speed.py``: its converged runs are the sample and the
reference of the fidelity."""


GAT_BUILD = ROOT / "benchmarks" / "table-build" / "Books-20core-full-sample2000-draw1-no-core"
"""The build whose architectures with an attention layer are ``--sample gat``."""


def gat_sample(n: int) -> list[str]:
    """The first ``n`` architectures with a ``gat`` layer of :data:`GAT_BUILD`'s plan."""
    from nasenv.tablebuild import ShardStore

    archs = ShardStore.open(GAT_BUILD).plan.architectures()
    return [a.to_string() for a in archs if "gat" in a.layers][:n]


def gat_share() -> str:
    """What the architectures with a ``gat`` layer cost :data:`GAT_BUILD` (its stored seconds,
    one thread a training): why the attention layer's speed matters to the surrogate's data."""
    from nasenv.space import Architecture
    from nasenv.tablebuild import ShardStore

    gat: list[float] = []
    other: list[float] = []
    for result in ShardStore.open(GAT_BUILD).results():
        if result.epoch_seconds:
            kind = gat if "gat" in Architecture.from_string(result.arch).layers else other
            kind.append(result.core_seconds)
    total = sum(gat) + sum(other)
    return (
        f"In `{GAT_BUILD.name}` the {len(gat)} of {len(gat) + len(other)} trainings with a `gat` "
        f"layer took {sum(gat) / total:.0%} of its {total / 3600:.1f} core-hours: "
        f"{statistics.mean(gat):.0f} s each on average, against {statistics.mean(other):.0f} s."
    )


def converged_runs() -> dict[str, float]:
    """Architecture -> ``eval_speed.score`` of its converged run (seed 0) in :data:`EVAL_SPEED`,
    in the journal's order."""
    from benchmarks.eval_speed import load_runs, score
    from nasenv.results import FIDELITIES

    converged = FIDELITIES["converged"].max_epochs  # eval_speed's --long-epochs default
    return {
        arch: score(run)
        for (arch, seed, epochs), run in load_runs(EVAL_SPEED).items()
        if seed == 0 and epochs == converged
    }


def report(records: list[dict[str, Any]], base: str, converged: dict[str, float]) -> str:
    """The markdown summary of the module docstring; ``converged``: :func:`converged_runs`."""
    pairs = [r for r in records if r["base"]["status"] == r["head"]["status"] == "ok"]
    lines = [
        f"# The trainer, paired: {base} against the working tree",
        "",
        f"{len(pairs)} architectures (both sides finished), seed 0, the tabulation budget, "
        f"{records[0]['threads'] if records else '?'} thread(s) a training.",
        "",
        "| side | median s per evaluation | median epochs | median s per epoch |",
        "| --- | --- | --- | --- |",
    ]
    for side in ("base", "head"):
        cost = [r[side]["cost_seconds"] for r in pairs]
        epochs = [r[side]["epochs"] for r in pairs]
        per_epoch = [r[side]["cost_seconds"] / r[side]["epochs"] for r in pairs]
        lines.append(
            f"| {side} | {statistics.median(cost):.2f} | {statistics.median(epochs):g} | "
            f"{statistics.median(per_epoch):.3f} |"
        )
    speedups = [r["base"]["cost_seconds"] / r["head"]["cost_seconds"] for r in pairs]
    faster = sum(s > 1 for s in speedups)
    gaps = [  # over the epochs both ran (a change of numerics may move the stopping epoch)
        max(
            abs(a - b)
            for a, b in zip(*(r[s]["val_recall"] for s in ("base", "head")), strict=False)
        )
        for r in pairs
    ]
    best = [abs(max(r["base"]["val_recall"]) - max(r["head"]["val_recall"])) for r in pairs]
    same_epochs = sum(r["base"]["epochs"] == r["head"]["epochs"] for r in pairs)
    lines += [
        "",
        f"Median speed-up per architecture (base seconds over head seconds): "
        f"{statistics.median(speedups):.2f}x, the head faster for {faster} of {len(pairs)}.",
        "",
        f"Validation Recall@20 curves: the largest gap at a common epoch, median "
        f"{statistics.median(gaps):.2g}, largest {max(gaps):.2g}; the best epoch's value apart "
        f"by {statistics.median(best):.2g} (median), {max(best):.2g} (largest); the same number "
        f"of epochs for {same_epochs} of {len(pairs)}.",
    ]
    rss = {
        side: [r[side]["max_rss_mb"] for r in pairs if "max_rss_mb" in r[side]]
        for side in ("base", "head")
    }
    if all(rss.values()):
        lines += [
            "",
            f"Peak resident memory of the worker processes after their last training: base "
            f"{rss['base'][-1]:,.0f} MB, head {rss['head'][-1]:,.0f} MB.",
        ]
    lines += _fidelity(pairs, converged)
    return "\n".join(lines)


def _fidelity(pairs: list[dict[str, Any]], converged: dict[str, float]) -> list[str]:
    """Each side's Spearman against the converged runs of ``eval_speed.jsonl`` (seed 0, the
    same architectures), where that journal holds them."""
    from scipy.stats import spearmanr

    mine = [r for r in pairs if r["arch"] in converged]
    if len(mine) < 3:
        return []
    truth = [converged[r["arch"]] for r in mine]
    rho = {
        side: spearmanr([max(r[side]["val_recall"]) for r in mine], truth).statistic
        for side in ("base", "head")
    }
    return [
        "",
        f"Fidelity: Spearman of the tabulation budget's best validation Recall@20 against the "
        f"converged runs of `eval_speed.jsonl` ({len(mine)} architectures, seed 0): base "
        f"{rho['base']:.3f}, head {rho['head']:.3f}.",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="the git revision to compare against")
    parser.add_argument("--dataset", default="Books-20core")
    parser.add_argument("--archs", type=int, default=30, help="the first N of the sample")
    parser.add_argument(
        "--sample",
        choices=("core", "gat"),
        default="core",
        help="eval_speed's core architectures (default) or architectures with attention layers",
    )
    parser.add_argument("--threads", type=int, default=1, help="as a table-build worker")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.dataset, args.threads)
        return

    from tqdm import tqdm

    revision, head = _git("rev-parse", args.base), _git("rev-parse", "HEAD")
    if _git("status", "--porcelain", "--untracked-files=no", "--", "nasenv"):
        head += "+"
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"trainer_ab-{revision[:7]}-{args.threads}t" + ("-gat" if args.sample == "gat" else "")
    journal = args.results / f"{stem}.jsonl"
    records = (
        [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
    )
    converged = converged_runs()
    archs = list(converged)[: args.archs] if args.sample == "core" else gat_sample(args.archs)
    if not archs:
        parser.error(f"no converged runs in {EVAL_SPEED} (python -m benchmarks.eval_speed)")
    mine = (head, args.dataset)
    records = [
        r for r in records if (r["head_commit"], r["dataset"]) == mine and r["arch"] in archs
    ]
    done = {r["arch"] for r in records}
    todo = [a for a in archs if a not in done]
    if todo:
        with tempfile.TemporaryDirectory() as folder:
            tree = Path(folder) / "base"
            _git("worktree", "add", "--detach", str(tree), revision)
            try:
                workers = {
                    "base": _Worker(tree, args.dataset, args.threads),
                    "head": _Worker(ROOT, args.dataset, args.threads),
                }
                for index, arch in enumerate(tqdm(todo, desc="pairs", unit="arch")):
                    order = ("base", "head") if index % 2 == 0 else ("head", "base")
                    record = {"revision": revision, "head_commit": head, "threads": args.threads}
                    record |= {"dataset": args.dataset, "arch": arch}
                    record |= {side: workers[side].train(arch) for side in order}
                    with open(journal, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                    records.append(record)
                for worker in workers.values():
                    worker.close()
            finally:
                _git("worktree", "remove", "--force", str(tree))
    text = report(records, f"{args.base} ({revision[:12]})", converged)
    if args.sample == "gat":
        text += "\n\n" + gat_share()
    (args.results / f"{stem}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
