"""Train every architecture of a space with several seeds, in resumable shards.

    python scripts/build_table.py                       # core space, Books-20core, seeds 0 1 2
    python scripts/build_table.py --workers 2 --threads 1
    python scripts/build_table.py --ray-address auto    # on a Ray cluster (extra: distributed)
    python scripts/build_table.py --status              # what is done, nothing is trained
    python scripts/build_table.py --space full --sample 500 --exclude core --seeds 0
                                                        # the surrogate's data outside the core

Results go to ``--out`` (default ``benchmarks/table-build/<dataset>``) as described in
:mod:`nasenv.tablebuild`: interrupt it at any time and run it again to continue. When every shard
is sealed, ``scripts/assemble_table.py`` turns them into the shipped table.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from nasenv.tablebuild import BuildPlan, ShardStore, Task, run_task

ROOT = Path(__file__).resolve().parent.parent


def run_local(
    store: ShardStore, tasks: list[Task], workers: int, threads: int, device: str, bar: tqdm
) -> int:
    """Run ``tasks`` in ``workers`` local processes; returns the number of failed tasks."""
    plan, errors = store.plan, 0
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        job = (plan.dataset, plan.fidelity)
        futures = {
            pool.submit(run_task, *job, arch, seed, threads, device): (arch, seed)
            for arch, seed in tasks
        }
        try:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=BuildPlan.dataset)
    parser.add_argument("--space", default=BuildPlan.space)
    parser.add_argument("--fidelity", default=BuildPlan.fidelity)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(BuildPlan.seeds))
    parser.add_argument("--shard-size", type=int, default=BuildPlan.shard_size)
    parser.add_argument("--sample", type=int, help="train only N architectures drawn uniformly")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of that draw")
    parser.add_argument("--exclude", help="skip the architectures of this space (e.g. core)")
    parser.add_argument("--out", type=Path, help="build directory")
    parser.add_argument("--workers", type=int, default=2, help="local processes (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training")
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device of the local workers (e.g. cuda); "
        "results differ from CPU ones, so build a GPU table into its own --out directory",
    )
    parser.add_argument("--limit", type=int, help="run at most this many pending trainings")
    parser.add_argument("--ray-address", help="connect to a Ray cluster instead of local workers")
    parser.add_argument("--retries", type=int, default=3, help="Ray retries per task")
    parser.add_argument("--status", action="store_true", help="report progress and exit")
    args = parser.parse_args(argv)

    plan = BuildPlan(
        args.dataset,
        args.space,
        args.fidelity,
        tuple(args.seeds),
        args.shard_size,
        args.sample,
        args.sample_seed,
        args.exclude,
    )
    name = (
        plan.dataset
        if plan.space == "core" and plan.sample is None
        else (
            f"{plan.dataset}-{plan.space}"
            + (f"-sample{plan.sample}" if plan.sample else "")
            + (f"-no-{plan.exclude}" if plan.exclude else "")
        )
    )
    out = args.out or ROOT / "benchmarks" / "table-build" / name
    store = ShardStore.resume(out, plan)  # a build keeps the cost version it was begun under
    done = store.done()  # read once: --status on a large build reads every shard
    pending = store.pending(done)
    total = len(plan.tasks())
    sealed = sum(store.is_sealed(s) for s in range(store.n_shards))
    print(
        f"{out}: {total - len(pending)}/{total} trainings done, "
        f"{sealed}/{store.n_shards} shards sealed, seconds of cost version "
        f"{store.plan.cost_version}"
    )
    seconds = [
        r["epoch_seconds"][-1] * (r["config"]["threads"] or 1)
        for r in done.values()
        if r["epoch_seconds"]
    ]
    if seconds:
        mean = sum(seconds) / len(seconds)
        print(
            f"{sum(seconds) / 3600:.1f} core-hours so far, {mean:.0f} core-seconds per training; "
            f"about {mean * len(pending) / 3600:.1f} core-hours to go at that rate"
        )
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
            errors = run_local(store, tasks, args.workers, args.threads, args.device, bar)
    print(
        f"ran {len(tasks) - errors} trainings in {time.perf_counter() - start:.0f} s; "
        f"{errors} failed with an exception (re-run to retry them)"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
