"""Train every architecture of a space with several seeds, in resumable shards.

    python scripts/build_table.py                       # core space, Books-20core, seeds 0 1 2
    python scripts/build_table.py --workers 2 --threads 1
    python scripts/build_table.py --ray-address auto    # on a Ray cluster (extra: distributed)
    python scripts/build_table.py --status              # what is done, nothing is trained
    python scripts/build_table.py --status --all        # every build, and the core-hours left
    python scripts/build_table.py --out DIR             # resume the build in DIR with its plan
    python scripts/build_table.py --space full --sample 500 --exclude core --seeds 0
                                                        # the surrogate's data outside the core
    python scripts/build_table.py --device cuda --workers 12 --deadline 480
                                                        # on a GPU, stopping in time (its own
                                                        # build: <dataset>-cuda; see
                                                        # scripts/device_build.sh)

Results go to ``--out`` (default ``benchmarks/table-build/<dataset>``) as described in
:mod:`nasenv.tablebuild`: interrupt it at any time and run it again to continue. When every shard
is sealed, ``scripts/assemble_table.py`` turns them into the shipped table.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from nasenv.results import TrainResult
from nasenv.tablebuild import BuildPlan, PlanMismatchError, ShardStore, Task, run_task

ROOT = Path(__file__).resolve().parent.parent
BUILDS = ROOT / "benchmarks" / "table-build"


def report(store: ShardStore) -> tuple[list[Task], float]:
    """Print a build's progress and cost; returns its pending trainings and the core-seconds
    they would take at the mean rate of its finished ones (0 when none has finished)."""
    done = store.done()  # read once: a large build's status reads every shard
    pending = store.pending(done)
    total = len(store.plan.tasks())
    sealed = sum(store.is_sealed(s) for s in range(store.n_shards))
    print(
        f"{store.directory}: {total - len(pending)}/{total} trainings done, "
        f"{sealed}/{store.n_shards} shards sealed, seconds of cost version "
        f"{store.plan.cost_version}"
    )
    seconds = [TrainResult.from_dict(r).core_seconds for r in done.values() if r["epoch_seconds"]]
    if not seconds:
        return pending, 0.0
    mean = sum(seconds) / len(seconds)
    print(
        f"{sum(seconds) / 3600:.1f} core-hours so far, {mean:.0f} core-seconds per training; "
        f"about {mean * len(pending) / 3600:.1f} core-hours to go at that rate"
    )
    return pending, mean * len(pending)


def _exit_with(parent: int, every: float = 2.0) -> None:
    """Worker initializer: end this process once ``parent`` (the build) is gone. A killed
    build's pool workers are not signalled, and each holds its task queue's write end, so
    without this they would finish their queued trainings for no one and then wait forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-build", daemon=True).start()


def run_local(
    store: ShardStore,
    tasks: list[Task],
    workers: int,
    threads: int,
    bar: tqdm,
    deadline: float | None = None,
) -> int:
    """Run ``tasks`` in ``workers`` local processes on the plan's device; returns the number of
    failed tasks. With ``deadline`` (a ``time.monotonic()`` instant) no training starts after
    it: those running finish and are recorded, the rest stay pending for the next run."""
    plan, errors = store.plan, 0
    queue = list(reversed(tasks))
    context, watch = get_context("spawn"), (os.getpid(),)
    with ProcessPoolExecutor(workers, context, initializer=_exit_with, initargs=watch) as pool:
        job = (plan.dataset, plan.fidelity)
        futures: dict[Future, Task] = {}

        def submit() -> None:  # keep every worker busy, with one task queued behind each
            while queue and len(futures) < 2 * workers:
                if deadline is not None and time.monotonic() >= deadline:
                    queue.clear()
                    return
                arch, seed = queue.pop()
                futures[pool.submit(run_task, *job, arch, seed, threads, plan.device)] = (
                    arch,
                    seed,
                )

        try:
            submit()
            while futures:
                finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = futures.pop(future)
                    try:
                        store.record(future.result())
                    except Exception as error:  # a crashed training stays pending for a re-run
                        errors += 1
                        tqdm.write(f"failed {task}: {error!r}")
                    bar.update()
                submit()
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return errors


def run_ray(
    store: ShardStore, tasks: list[Task], address: str, threads: int, retries: int, bar: tqdm
) -> int:
    """Run ``tasks`` as Ray tasks (retried ``retries`` times); the driver records the results."""
    try:
        import ray
    except ImportError as error:
        message = "--ray-address needs Ray: pip install 'recnas-books[distributed]'"
        raise SystemExit(message) from error
    ray.init(address=address)
    remote = ray.remote(num_cpus=threads, max_retries=retries, retry_exceptions=True)(run_task)
    plan, errors = store.plan, 0
    refs = {
        remote.remote(plan.dataset, plan.fidelity, arch, seed, threads): (arch, seed)
        for arch, seed in tasks
    }
    while refs:
        finished, _ = ray.wait(list(refs), num_returns=1)
        for ref in finished:
            task = refs.pop(ref)
            try:
                store.record(ray.get(ref))
            except Exception as error:
                errors += 1
                tqdm.write(f"failed {task} after {retries} retries: {error!r}")
            bar.update()
    return errors


PLAN_FLAGS = (
    "dataset",
    "space",
    "fidelity",
    "seeds",
    "shard_size",
    "sample",
    "sample_seed",
    "exclude",
    "device",
)
"""The command line's flags that set a :class:`BuildPlan` field of the same name."""


def _plan(args: argparse.Namespace) -> BuildPlan:
    """The plan the flags name: the plan stored in ``--out`` when no plan flag is given and
    that directory holds a build (resuming it needs nothing else), else the flags over the
    defaults (a stored plan that differs is then refused by :class:`ShardStore`)."""
    given = {flag: getattr(args, flag) for flag in PLAN_FLAGS if getattr(args, flag) is not None}
    if not given and args.out is not None and (args.out / ShardStore.PLAN_FILE).exists():
        return ShardStore.open(args.out).plan
    if "seeds" in given:
        given["seeds"] = tuple(given["seeds"])
    return BuildPlan(**given)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # The plan's flags default to None so that a build directory alone names its plan.
    parser.add_argument("--dataset", help=f"the task (default {BuildPlan.dataset})")
    parser.add_argument("--space", help=f"the space to train (default {BuildPlan.space})")
    parser.add_argument("--fidelity", help=f"the budget (default {BuildPlan.fidelity})")
    parser.add_argument(
        "--seeds", type=int, nargs="+", help=f"training seeds (default {list(BuildPlan.seeds)})"
    )
    parser.add_argument(
        "--shard-size", type=int, help=f"trainings per shard (default {BuildPlan.shard_size})"
    )
    parser.add_argument("--sample", type=int, help="train only N architectures drawn uniformly")
    parser.add_argument("--sample-seed", type=int, help="seed of that draw (default 0)")
    parser.add_argument("--exclude", help="skip the architectures of this space (e.g. core)")
    parser.add_argument(
        "--out",
        type=Path,
        help="build directory; one that holds a build, given without the plan's flags, "
        "resumes that build with its stored plan",
    )
    parser.add_argument("--workers", type=int, default=2, help="local processes (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training")
    parser.add_argument(
        "--device",
        help="torch device type of the local workers (cpu, cuda); part of the plan: results "
        "differ from CPU ones, so a GPU build is its own build (default directory "
        "<name>-cuda) and records the device in every result (default cpu)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        help="start no training after this many seconds; running ones finish and are recorded "
        "(for a time-limited machine: a device loan's 10-minute commands)",
    )
    parser.add_argument("--limit", type=int, help="run at most this many pending trainings")
    parser.add_argument("--ray-address", help="connect to a Ray cluster instead of local workers")
    parser.add_argument("--retries", type=int, default=3, help="Ray retries per task")
    parser.add_argument("--status", action="store_true", help="report progress and exit")
    parser.add_argument(
        "--all", action="store_true", help=f"with --status: every build under {BUILDS}"
    )
    args = parser.parse_args(argv)

    plan = _plan(args)
    name = (
        plan.dataset
        if plan.space == "core" and plan.sample is None
        else (
            f"{plan.dataset}-{plan.space}"
            + (f"-sample{plan.sample}" if plan.sample else "")
            + (f"-no-{plan.exclude}" if plan.exclude else "")
        )
    ) + ("" if plan.device == "cpu" else f"-{plan.device}")
    out = args.out or BUILDS / name
    if args.status and args.all:
        builds = sorted(p.parent for p in BUILDS.glob(f"*/{ShardStore.PLAN_FILE}"))
        to_go = sum(report(ShardStore.open(build))[1] for build in builds)
        print(f"{len(builds)} builds; about {to_go / 3600:.1f} core-hours to go in all")
        return 0
    if args.status and not (out / ShardStore.PLAN_FILE).exists():
        print(f"{out}: no build there yet (--status starts none)")
        return 0
    try:  # a build keeps the cost version it was begun under
        store = ShardStore.resume(out, plan)
    except PlanMismatchError as error:
        message = f"{error}; to resume it, pass --out {out} without the plan's flags"
        raise SystemExit(message) from None
    pending, _ = report(store)
    total = len(plan.tasks())
    if args.status or not pending:
        return 0
    tasks = pending[: args.limit] if args.limit else pending
    start = time.perf_counter()
    with tqdm(
        total=total, initial=total - len(pending), desc="trainings", unit="run", smoothing=0.05
    ) as bar:
        if args.ray_address:
            errors = run_ray(store, tasks, args.ray_address, args.threads, args.retries, bar)
        else:
            deadline = None if args.deadline is None else time.monotonic() + args.deadline
            errors = run_local(store, tasks, args.workers, args.threads, bar, deadline)
    ran = len(pending) - len(store.pending())
    print(
        f"ran {ran} trainings in {time.perf_counter() - start:.0f} s; {errors} failed with an "
        f"exception, {len(tasks) - ran - errors} not started (re-run to continue)"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
