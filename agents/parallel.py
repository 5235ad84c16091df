"""Parallel workers: a search with ``N`` evaluations in flight, in simulated time on the table
and for real on the live back end (issue 18).

:func:`run_parallel` runs an :class:`~agents.base.AskTellAgent` (random search, regularized
evolution, TPE with Optuna's constant liar, ASHA, SMAC3's multi-fidelity facade) with
``workers`` evaluations at once. The loop
is the same on every back end:

1. while a worker is idle and the budget lets an evaluation start, the agent is asked for one
   (its proposer's ``ask``), which starts on the lowest-numbered idle worker;
2. the evaluation that finishes first is told to the agent (``tell``) and its worker is idle
   again; repeat until nothing runs and nothing may start.

**Simulated time (table back end).** An event queue, as Syne Tune's simulator back end (Salinas
et al. 2022, "Syne Tune: A Library for Large Scale Hyperparameter Tuning and Reproducible
Research"): the table answers an evaluation at once, and it finishes at its start plus its
``cost_seconds``, the replayed training seconds (for a promotion to a larger budget, the
resumed difference: see :mod:`agents.runner`). Events are ordered by finish time, then by start.
The clock moves with training seconds only: **the agent's own compute is excluded** by default,
which makes a run exactly reproducible and compares agents by the trainings they cause.
``agent_seconds="counted"`` adds the measured wall seconds of every ask and tell to the clock
instead (a scheduler that blocks its workers while it thinks), which is not reproducible.

**Real time (live back end).** ``workers`` processes, one torch thread each, train the
proposals; the clock is the wall clock, and everything the agent does is counted. The results
land in the live back end's SQLite cache (:mod:`nasenv.cache`), from which the search's own env
reads them, so a result is recorded exactly as a sequential search records it and a killed
search loses no finished training. Each training's seed is the env's ``eval_seed`` under the
``fixed`` seed policy, else drawn from the env's seeds by a generator seeded with the search's.
Per-evaluation budgets are a table feature: ASHA and SMAC3 run on the table only. With
``ray_address`` the trainings are Ray tasks instead (one CPU each, retried ``RAY_RETRIES`` times
if a worker dies) on the cluster at that address (``"local"``: a new local instance of
``workers`` CPUs).
Each task returns its result, which the driver stores in its live cache before recording it,
so the nodes need the package but no shared disk.

**Budget.** ``evaluations`` counts evaluations started; ``seconds`` is the clock: no evaluation
starts at or after it, and those running finish (as in :class:`~agents.runner.SearchRunner`,
the last ones may overshoot).

**Agents without ask and tell** (the RL agents, MCTS, Hyperband, ...) propose one evaluation at
a time from within their own loop: they run as :func:`~agents.runner.run_search` runs them, on
one worker whatever ``workers`` is, with the clock at the running sum of their costs. The
comparison says what their design gives up.

Every :class:`~agents.runner.Trial` is as the runner records it (``number`` in start order on
the table, in finish order on the live back end, where a result is recorded when it is in;
``total_seconds`` the training seconds charged so far, summed over workers); a
:class:`Finished` adds its worker and its start and finish on the clock.
"""

from __future__ import annotations

import heapq
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, cast

import gymnasium as gym
import numpy as np

from agents.base import AskTellAgent, Proposal
from agents.runner import (
    Budget,
    SearchAgent,
    SearchRunner,
    Trial,
    final_test_metrics,
    run_search,
)
from nasenv.cache import ResultCache
from nasenv.data import BooksDataset
from nasenv.evaluators import LiveEvaluator, is_predicted
from nasenv.results import TrainConfig, TrainResult
from nasenv.space import Architecture

AGENT_SECONDS = ("excluded", "counted")
"""Whether the agent's own compute moves the simulated clock (see the module docstring)."""

Clock = Literal["simulated", "wall"]


@dataclass(frozen=True)
class Finished:
    """A trial with its place on the clock: the worker that ran it and its start and finish
    (seconds since the search began: simulated on the table, wall on the live back end)."""

    trial: Trial
    worker: int
    start: float
    finish: float


@dataclass
class ParallelResult:
    """What a parallel search found, and when.

    Args:
        finished: every evaluation, in the order they finished.
        best: the incumbent at the end (full-budget trials only, as
            :meth:`agents.runner.SearchRunner.best`).
        test_metrics: test metrics of ``best`` (the table's stored trainings, or the live
            trainings').
        clock: ``"simulated"`` (the table's seconds) or ``"wall"`` (live trainings).
        agent_seconds: measured wall seconds the agent spent in ask and tell (in
            ``clock_seconds`` only where ``agent_seconds_counted``).
        sequential: the agent has no ask and tell and ran on one worker.
    """

    agent: str
    seed: int
    workers: int
    budget: Budget
    finished: list[Finished]
    best: Trial | None
    test_metrics: dict[str, float]
    clock: Clock
    wall_seconds: float
    agent_seconds: float
    agent_seconds_counted: bool
    sequential: bool
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @property
    def clock_seconds(self) -> float:
        """When the last evaluation finished (0 without any)."""
        return max((f.finish for f in self.finished), default=0.0)

    @property
    def predicted(self) -> bool:
        """Whether any reward is a prediction (a surrogate's)."""
        return any(is_predicted(f.trial.source) for f in self.finished)

    def incumbents(self, times: Any) -> list[Trial | None]:
        """The incumbent when each of ``times`` (ascending) comes: the best full-budget trial
        finished by then (the earliest started among ties; ``None`` before the first)."""
        times = np.asarray(times, dtype=float)
        if np.any(np.diff(times) < 0):
            raise ValueError("times must be ascending")
        order = sorted((f for f in self.finished if f.trial.full), key=lambda f: f.finish)
        out: list[Trial | None] = []
        best: Trial | None = None
        k = 0
        for t in times:
            while k < len(order) and order[k].finish <= t:
                trial = order[k].trial
                if best is None or (trial.reward, -trial.number) > (best.reward, -best.number):
                    best = trial
                k += 1
            out.append(best)
        return out

    def utilisation(self) -> float:
        """Busy worker-seconds over ``workers * clock_seconds`` (1: never idle)."""
        if not self.finished or self.clock_seconds <= 0:
            return 0.0
        busy = sum(f.finish - f.start for f in self.finished)
        return busy / (self.workers * self.clock_seconds)

    def summary(self) -> str:
        """The best architecture and what the search took on the clock."""
        workers = f"{self.workers} worker" + "s" * (self.workers > 1)
        if self.sequential:
            workers += " (no ask and tell: one evaluation at a time)"
        head = (
            f"{self.agent} (seed {self.seed}) on {workers}: {len(self.finished)} evaluations in "
            f"{_duration(self.clock_seconds)} of {self.clock} time, "
            f"{self.utilisation():.0%} of the workers' time busy"
        )
        if self.best is None:
            return f"{head}; no full-budget architecture evaluated"
        found = next(f for f in self.finished if f.trial.number == self.best.number)
        test = ", ".join(f"{k} {v:.4f}" for k, v in self.test_metrics.items())
        return "\n".join(
            [
                head,
                f"best (evaluation {self.best.number}, finished at {_duration(found.finish)}): "
                f"{self.best.arch}",
                f"  validation Recall@20 {self.best.val_recall:.4f}, NDCG@20 "
                f"{self.best.val_ndcg:.4f}" + (f"; {test}" if test else ""),
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """Every field, for JSON."""
        return {**asdict(self), "clock_seconds": self.clock_seconds}


def _duration(seconds: float) -> str:
    """``12.5 min`` below an hour, else ``1.25 h``."""
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def run_parallel(
    agent: SearchAgent,
    env: gym.Env,
    budget: Budget,
    workers: int,
    seed: int = 0,
    agent_seconds: str = "excluded",
    on_finished: Callable[[Finished], None] | None = None,
    ray_address: str | None = None,
) -> ParallelResult:
    """Run ``agent`` on ``env`` with ``workers`` evaluations in flight (see the module
    docstring); ``on_finished`` is called with every evaluation as it finishes.

    Raises:
        ValueError: ``workers < 1``, an unknown ``agent_seconds``, ``"counted"`` agent seconds on
            the live back end (its clock is the wall clock, which counts them anyway) or for an
            agent without ask and tell, a live env without a cache or under the ``mean`` seed
            policy, or ``ray_address`` off the live back end.
        ImportError: ``ray_address`` without Ray (the ``distributed`` extra).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if agent_seconds not in AGENT_SECONDS:
        raise ValueError(f"unknown agent_seconds {agent_seconds!r}; allowed: {AGENT_SECONDS}")
    counted = agent_seconds == "counted"
    evaluator = getattr(env.unwrapped, "evaluator", None)
    live = isinstance(evaluator, LiveEvaluator)
    if counted and live:
        raise ValueError("agent_seconds='counted' is for the table: live runs use the wall clock")
    if ray_address is not None and not live:
        raise ValueError(f"ray_address={ray_address!r} needs the live back end (it trains)")
    if not isinstance(agent, AskTellAgent):
        if counted:
            raise ValueError(
                f"agent_seconds='counted' needs an agent with ask and tell; "
                f"{_name(agent)} proposes from within its own loop"
            )
        return _sequential(agent, env, budget, workers, seed, on_finished)
    runner = SearchRunner(env, Budget(evaluations=budget.evaluations or sys.maxsize))
    runner.reset(seed=seed)
    runner.action_space.seed(seed)
    pool: _Workers
    if live and ray_address is not None:
        pool = _RayWorkers(runner, cast(LiveEvaluator, evaluator), workers, seed, ray_address)
    elif live:
        pool = _LiveWorkers(runner, cast(LiveEvaluator, evaluator), workers, seed)
    else:
        pool = _SimulatedWorkers(runner, workers)
    start = time.perf_counter()
    finished: list[Finished] = []
    thinking = 0.0
    with agent.proposer(runner) as proposer, pool:
        while True:
            while pool.idle() and _may_start(budget, pool.started, pool.now):
                tick = time.perf_counter()
                proposal = proposer.ask()
                thinking += (spent := time.perf_counter() - tick)
                if counted:
                    pool.think(spent)
                if proposal is None:
                    break
                pool.start(proposal)
            if not pool.running():
                break
            done, proposal = pool.next_finished()
            finished.append(done)
            if on_finished is not None:
                on_finished(done)
            tick = time.perf_counter()
            proposer.tell(proposal, done.trial)
            thinking += (spent := time.perf_counter() - tick)
            if counted:
                pool.think(spent)
    best = runner.best() if runner.history else None
    return ParallelResult(
        agent=_name(agent),
        seed=seed,
        workers=workers,
        budget=budget,
        finished=finished,
        best=best,
        test_metrics=final_test_metrics(runner, best.arch) if best is not None else {},
        clock="wall" if live else "simulated",
        wall_seconds=time.perf_counter() - start,
        agent_seconds=thinking,
        agent_seconds_counted=counted,
        sequential=False,
        hyperparameters=agent.hyperparameters(),
    )


def _may_start(budget: Budget, started: int, now: float) -> bool:
    """Whether the budget lets another evaluation start at ``now``."""
    if budget.evaluations is not None and started >= budget.evaluations:
        return False
    return budget.seconds is None or now < budget.seconds


def _name(agent: SearchAgent) -> str:
    return str(getattr(agent, "name", type(agent).__name__))


def _sequential(
    agent: SearchAgent,
    env: gym.Env,
    budget: Budget,
    workers: int,
    seed: int,
    on_finished: Callable[[Finished], None] | None,
) -> ParallelResult:
    """An agent without ask and tell: :func:`run_search`, each trial on worker 0 from the end
    of the previous one."""
    callback = None
    if on_finished is not None:
        report = on_finished

        def callback(trial: Trial) -> None:
            report(_on_one_worker(trial))

    result = run_search(agent, env, budget, seed, callback)
    hyperparameters = getattr(agent, "hyperparameters", None)
    return ParallelResult(
        agent=result.agent,
        seed=seed,
        workers=workers,
        budget=budget,
        finished=[_on_one_worker(trial) for trial in result.history],
        best=result.best,
        test_metrics=result.test_metrics,
        clock="simulated" if result.source != "live" else "wall",
        wall_seconds=result.wall_seconds,
        agent_seconds=0.0,
        agent_seconds_counted=False,
        sequential=True,
        hyperparameters=hyperparameters() if callable(hyperparameters) else {},
    )


def _on_one_worker(trial: Trial) -> Finished:
    return Finished(trial, 0, trial.total_seconds - trial.cost_seconds, trial.total_seconds)


class _Workers(Protocol):
    """Where evaluations run: ``started`` so far, the clock ``now``."""

    started: int

    @property
    def now(self) -> float: ...

    def __enter__(self) -> _Workers: ...

    def __exit__(self, *exc: object) -> None: ...

    def idle(self) -> bool:
        """Whether a worker is free."""
        ...

    def running(self) -> bool:
        """Whether an evaluation is running."""
        ...

    def start(self, proposal: Proposal) -> None:
        """Start ``proposal`` on the lowest-numbered idle worker."""
        ...

    def next_finished(self) -> tuple[Finished, Proposal]:
        """Wait for the evaluation that finishes first; it, recorded by the runner."""
        ...

    def think(self, seconds: float) -> None:
        """The agent spent ``seconds`` between events (counted agent seconds)."""
        ...


class _SimulatedWorkers:
    """The event queue: each evaluation is answered at start and finishes ``cost_seconds``
    later on the simulated clock."""

    def __init__(self, runner: SearchRunner, workers: int) -> None:
        self.runner = runner
        self.now = 0.0
        self.started = 0
        self._free = list(range(workers))
        self._events: list[tuple[float, int, int, float, Proposal, Trial]] = []

    def __enter__(self) -> _SimulatedWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def think(self, seconds: float) -> None:
        self.now += seconds

    def idle(self) -> bool:
        return bool(self._free)

    def running(self) -> bool:
        return bool(self._events)

    def start(self, proposal: Proposal) -> None:
        trial = self.runner.evaluate(proposal.arch, fidelity=proposal.fidelity)
        worker = heapq.heappop(self._free)
        event = (self.now + trial.cost_seconds, self.started, worker, self.now, proposal, trial)
        heapq.heappush(self._events, event)
        self.started += 1

    def next_finished(self) -> tuple[Finished, Proposal]:
        finish, _, worker, start, proposal, trial = heapq.heappop(self._events)
        self.now = max(self.now, finish)
        heapq.heappush(self._free, worker)
        return Finished(trial, worker, start, finish), proposal


_WORKER_EVALUATOR: LiveEvaluator | None = None  # one per worker process, set by _init_worker


def _init_worker(
    dataset: BooksDataset, config: TrainConfig, cache: str, device: str, threads: int
) -> None:
    """Worker process setup: its own torch thread count, ``malloc`` settings
    (:func:`nasenv.allocator.keep_freed_memory`) and live evaluator."""
    import torch

    from nasenv.allocator import keep_freed_memory

    global _WORKER_EVALUATOR
    torch.set_num_threads(threads)
    keep_freed_memory()
    _WORKER_EVALUATOR = LiveEvaluator(dataset, config, cache, device=device)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """End this worker process once the search's process ``parent`` is gone (killed with
    SIGKILL, say), instead of training on as an orphan. The trainings it finished are in the
    cache; the one it was running is lost, and its claim, whose owner is dead, is taken over."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _train(arch: str, seed: int) -> float:
    """Train ``arch`` with ``seed`` into the shared cache; its training seconds."""
    assert _WORKER_EVALUATOR is not None, "a worker process without _init_worker"
    return _WORKER_EVALUATOR.result(Architecture.from_string(arch), seed).train_seconds


class _LiveWorkers:
    """``workers`` processes training into the live cache; the clock is the wall clock."""

    def __init__(
        self, runner: SearchRunner, evaluator: LiveEvaluator, workers: int, seed: int
    ) -> None:
        cache = self._setup(runner, evaluator, workers, seed)
        self._running: dict[Future[float], tuple[int, float, Proposal, str, int]] = {}
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),  # no forked torch state
            initializer=_init_worker,
            initargs=(
                evaluator.dataset,  # the loaded task, whatever directory it came from
                evaluator.config,
                os.fspath(cache.path),
                evaluator.device,
                1,
            ),
        )

    def _setup(
        self, runner: SearchRunner, evaluator: LiveEvaluator, workers: int, seed: int
    ) -> ResultCache:
        """Check the env and take its seeds; the live cache."""
        env = runner.env.unwrapped
        policy = getattr(env, "seed_policy", "fixed")
        if policy == "mean":
            raise ValueError("parallel live search trains one seed per evaluation, not 'mean'")
        if evaluator.cache is None:
            raise ValueError("parallel live search needs the live cache (cache=None was given)")
        self.runner, self.evaluator, self.policy = runner, evaluator, policy
        self.seeds: tuple[int, ...] = tuple(getattr(env, "seeds", (0,)))
        self.fixed_seed = int(getattr(env, "eval_seed", 0))
        self.rng = np.random.default_rng(seed)
        self.started = 0
        self._origin = time.perf_counter()
        self._free = list(range(workers))
        return evaluator.cache

    @property
    def now(self) -> float:
        return time.perf_counter() - self._origin

    def think(self, seconds: float) -> None:
        pass  # the wall clock has counted them already

    def __enter__(self) -> _LiveWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=exc[0] is None, cancel_futures=True)

    def idle(self) -> bool:
        return bool(self._free)

    def running(self) -> bool:
        return bool(self._running)

    def _claim(self, proposal: Proposal) -> tuple[int, str, int]:
        """A free worker, the architecture string and the seed of ``proposal``."""
        if proposal.fidelity is not None:
            raise ValueError(
                f"per-evaluation budgets need the table back end; {proposal.fidelity} was asked "
                "for on the live one"
            )
        arch = proposal.arch
        name = (
            arch if isinstance(arch, Architecture) else self.runner.space.from_decisions(list(arch))
        )
        seed = self.fixed_seed if self.policy == "fixed" else int(self.rng.choice(self.seeds))
        self.started += 1
        return heapq.heappop(self._free), name.to_string(), seed

    def _record(self, worker: int, start: float, arch: str, seed: int) -> Finished:
        """Free ``worker`` and record the training through the env, which reads its result
        from the cache."""
        finish = self.now
        heapq.heappush(self._free, worker)
        trial = self.runner.evaluate(Architecture.from_string(arch), seed=seed)
        return Finished(trial, worker, start, finish)

    def start(self, proposal: Proposal) -> None:
        worker, arch, seed = self._claim(proposal)
        future = self._pool.submit(_train, arch, seed)
        self._running[future] = (worker, self.now, proposal, arch, seed)

    def next_finished(self) -> tuple[Finished, Proposal]:
        done, _ = wait(self._running, return_when=FIRST_COMPLETED)
        future = min(done, key=lambda f: self._running[f][1])  # the earliest started of those done
        worker, start, proposal, arch, seed = self._running.pop(future)
        future.result()  # a training that raised raises here
        return self._record(worker, start, arch, seed), proposal


RAY_RETRIES = 3
"""How often a Ray training task is retried when its worker dies (Ray's ``max_retries``)."""


def _ray_train(
    dataset: BooksDataset, config: TrainConfig, device: str, arch: str, seed: int
) -> TrainResult:
    """A Ray task: train ``arch`` with ``seed`` on one thread, uncached; its ``TrainResult``."""
    import torch

    torch.set_num_threads(1)  # a Ray worker process has one CPU
    evaluator = LiveEvaluator(dataset, config, None, device=device)
    return evaluator.result(Architecture.from_string(arch), seed)


class _RayWorkers(_LiveWorkers):
    """Ray tasks on a cluster; each returns its result, which the driver caches and records.
    A training the driver's cache holds already needs no task."""

    def __init__(
        self,
        runner: SearchRunner,
        evaluator: LiveEvaluator,
        workers: int,
        seed: int,
        address: str,
    ) -> None:
        try:
            import ray
        except ImportError as error:
            raise ImportError(
                "ray_address needs Ray: pip install 'recnas-books[distributed]'"
            ) from error
        self._cache = self._setup(runner, evaluator, workers, seed)
        self.ray = ray
        self._own = not ray.is_initialized()
        if self._own:
            local = address == "local"
            ray.init(
                address=None if local else address,
                num_cpus=workers if local else None,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        self._task = ray.remote(num_cpus=1, max_retries=RAY_RETRIES)(_ray_train)
        self._dataset = ray.put(evaluator.dataset)
        self._tasks: dict[Any, tuple[int, float, Proposal, str, int]] = {}
        self._cached: list[tuple[int, float, Proposal, str, int]] = []  # no task needed

    def __exit__(self, *exc: object) -> None:
        for ref in self._tasks:
            self.ray.cancel(ref, force=True)
        if self._own:
            self.ray.shutdown()

    def running(self) -> bool:
        return bool(self._tasks or self._cached)

    def start(self, proposal: Proposal) -> None:
        worker, arch, seed = self._claim(proposal)
        if self._cache.get(self.evaluator.cache_key(Architecture.from_string(arch), seed)):
            self._cached.append((worker, self.now, proposal, arch, seed))  # trained before
            return
        config, device = self.evaluator.config, self.evaluator.device
        ref = self._task.remote(self._dataset, config, device, arch, seed)
        self._tasks[ref] = (worker, self.now, proposal, arch, seed)

    def next_finished(self) -> tuple[Finished, Proposal]:
        if self._cached:
            worker, start, proposal, arch, seed = self._cached.pop(0)
            return self._record(worker, start, arch, seed), proposal
        done, _ = self.ray.wait(list(self._tasks), num_returns=1)
        worker, start, proposal, arch, seed = self._tasks.pop(done[0])
        result = self.ray.get(done[0])  # a task that failed RAY_RETRIES times raises here
        key = self.evaluator.cache_key(Architecture.from_string(arch), seed)
        self._cache.put(key, result)
        return self._record(worker, start, arch, seed), proposal
