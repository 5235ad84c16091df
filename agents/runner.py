"""The search loop every agent shares: budget, history, best architecture, final report.

:class:`SearchRunner` wraps a RecNAS environment. Agents either step it like any Gymnasium env
(the RL agents) or hand it whole architectures through :meth:`SearchRunner.evaluate` (the
black-box baselines), which plays the decisions through the same ``step`` calls. Either way every
finished architecture becomes a :class:`Trial` in :attr:`SearchRunner.history`.

How the budget counts:

* every evaluation counts once, **including repeats of an architecture already evaluated**, and
  charges its training seconds again. The table answers a repeat instantly, but a search that
  trained for real would have paid for it (or for the memory to avoid it), so an agent that wants
  to avoid repeats has to remember them itself;
* an evaluation that starts while budget is left runs to the end (the seconds budget may be
  overshot by the last one, as a real training would); no evaluation starts after that
  (:class:`BudgetExhausted`);
* an invalid action (an agent that ignores the masks) ends the episode without training; it costs
  no evaluation and is counted in :attr:`SearchRunner.invalid_episodes`.

Fidelity is the searcher's choice (multi-fidelity search, issue 18): on the table back end
``evaluate(arch, fidelity=(max_epochs, patience))`` answers at that smaller budget, exactly, from
the stored curves (the env's ``reset(options={"fidelity": ...})``) and charges that budget's
replayed cost, the stored cumulative seconds at the epoch where its early stopping ends. The
runner remembers the latest evaluation of every architecture (its seed, budget and cumulative
seconds). Asking for an architecture again at a budget that is at least as large in both
``max_epochs`` and ``patience``, and larger in one, **resumes** that evaluation: the same seed
(the env's ``eval_seed`` option, so the ``random`` seed policy draws nothing) and only the
difference of cumulative seconds is charged, which is what a real training resumed from its
checkpoint pays (training never depends on the stopping rule, so the longer run extends the
shorter one epoch for epoch). Any other repeat is a fresh evaluation, drawn and charged in full
like every repeat above. Each call counts as one evaluation whatever its budget; a seconds budget
counts the charged seconds. :attr:`Trial.fidelity` records the budget (``None``: the env's own,
full budget) and :attr:`Trial.resumed_from` the budget it resumed. The incumbent
(:meth:`SearchRunner.best`, :meth:`SearchResult.best_so_far`) is chosen among full-budget
trials only, since a low-budget score is not comparable with a full one.

Every number says what it is. A :class:`Trial` records ``info["source"]`` (``"table"``,
``"live"``, or ``"surrogate"``: a prediction, not a measurement) and :class:`SearchResult` and
its :meth:`~SearchResult.summary` label a surrogate's numbers *predicted*; test metrics keyed
``test_*`` are measured, ``predicted_test_*`` predicted. ``fresh_seeds`` trains the selected
architecture for real on the live back end, the surrogate's included
(:func:`final_test_metrics`).

On a task set (:class:`nasenv.tasks.TaskSetEnv`) rewards of different tasks are not comparable:
each :class:`Trial` records its task (``info["task"]``), :meth:`SearchRunner.best` takes a task
and :class:`SearchResult` keeps a best per task, with test metrics of each task's best on that
task's own env.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, cast

import gymnasium as gym
import numpy as np

from nasenv.cli import evaluate_command
from nasenv.evaluators import (
    FRESH_SEED_START,
    SOURCES,
    Evaluator,
    SurrogateEvaluator,
    is_predicted,
)
from nasenv.space import Architecture, SearchSpace


class BudgetExhausted(RuntimeError):
    """An evaluation was asked for after the search budget was spent."""


class SearchAgent(Protocol):
    """What :func:`run_search` runs: anything with ``search(runner)``, such as an
    :class:`agents.base.Agent` or a search function wrapped by
    :class:`agents.leaderboard.FunctionAgent`. Its ``name`` (default: its class name) and
    ``hyperparameters()`` (default: none), where it has them, go into the :class:`SearchResult`.
    """

    def search(self, runner: SearchRunner) -> object: ...


class _SearchEnv(Protocol):
    """What the runner uses of the env it wraps, unwrapped: a :class:`nasenv.env.RecNASEnv` or
    :class:`nasenv.tasks.TaskSetEnv`."""

    @property
    def space(self) -> SearchSpace: ...

    def completes(self, action: object) -> bool: ...


@dataclass(frozen=True)
class Budget:
    """When a search stops: after ``evaluations`` architectures and/or ``seconds`` of simulated
    training (the evaluations' ``cost_seconds``), whichever comes first."""

    evaluations: int | None = 300
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.evaluations is None and self.seconds is None:
            raise ValueError("a budget needs evaluations, seconds or both")
        if self.evaluations is not None and self.evaluations < 1:
            raise ValueError(f"evaluations must be >= 1, got {self.evaluations}")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")


@dataclass(frozen=True)
class Trial:
    """One evaluated architecture. ``number`` counts evaluations from 1.

    ``source`` is where its numbers come from (``info["source"]``: ``"table"``, ``"live"``, or
    ``"surrogate"``, whose reward, validation metrics and seconds are predictions; ``None``
    from an env that does not say); ``task`` the task it was evaluated on (``info["task"]`` of a
    :class:`nasenv.tasks.TaskSetEnv`; ``None`` on a single-task env).
    """

    number: int
    arch: str
    reward: float
    val_recall: float
    val_ndcg: float
    seed: int | None
    status: str
    cost_seconds: float
    total_seconds: float
    source: str | None = None
    task: str | None = None
    fidelity: tuple[int, int] | None = None
    """``(max_epochs, patience)`` of a reduced budget; ``None``: the env's own (full) budget."""
    resumed_from: tuple[int, int] | None = None
    """The budget of the earlier evaluation (same architecture and seed) this one resumed, whose
    seconds were not charged again; ``None``: a fresh training."""

    @property
    def predicted(self) -> bool:
        """Whether the reward and validation metrics are predictions (a surrogate's)."""
        return is_predicted(self.source)

    @property
    def full(self) -> bool:
        """Whether this trial ran at the env's own (full) budget."""
        return self.fidelity is None


@dataclass(frozen=True)
class _Checkpoint:
    """The latest evaluation of an architecture: what a resumed training starts from."""

    arch: str
    seed: int | None
    fidelity: tuple[int, int] | None  # the budget it ran at (None: unknown, not a table)
    seconds: float  # the cumulative seconds its training reached


class SearchRunner(gym.Wrapper):
    """A RecNAS env that records every evaluation and enforces a :class:`Budget`.

    Args:
        env: a ``RecNAS-Books`` environment (from ``gym.make`` or ``RecNASEnv``).
        budget: when to stop.
        on_trial: called with every new :class:`Trial` (progress bars, logging).
    """

    def __init__(
        self,
        env: gym.Env,
        budget: Budget,
        on_trial: Callable[[Trial], None] | None = None,
    ) -> None:
        super().__init__(env)
        self.budget = budget
        self.on_trial = on_trial
        self.history: list[Trial] = []
        self.invalid_episodes = 0
        self.total_seconds = 0.0
        self._latest: dict[tuple[str | None, str], _Checkpoint] = {}
        self._resume: _Checkpoint | None = None  # what the episode being played resumes

    @property
    def _search_env(self) -> _SearchEnv:
        return cast(_SearchEnv, self.env.unwrapped)  # gymnasium types it a plain Env

    @property
    def space(self) -> SearchSpace:
        return self._search_env.space

    @property
    def dataset(self) -> str | None:
        """The task being searched (the evaluator's dataset; ``None`` on a task set)."""
        return _dataset_name(self.env.unwrapped)

    @property
    def full_fidelity(self) -> tuple[int, int] | None:
        """``(max_epochs, patience)`` of the env's own budget on the table back end (``None``
        elsewhere: no other budget can be asked for there)."""
        evaluator = getattr(self.env.unwrapped, "evaluator", None)
        table = getattr(evaluator, "table", None)
        if table is None:
            return None
        return cast(tuple[int, int], table.budget(getattr(evaluator, "fidelity", None)))

    def fidelity_budget(self, fidelity: object) -> tuple[int, int]:
        """``(max_epochs, patience)`` of ``fidelity`` (a pair or a name of
        :data:`nasenv.results.FIDELITIES`), checked by the env.

        Raises:
            ValueError: not the table back end of a :class:`~nasenv.env.RecNASEnv`, or a budget
                outside the table's ``1..max_epochs`` and ``1..patience``.
        """
        check = getattr(self.env.unwrapped, "fidelity_budget", None)
        if check is None:
            raise ValueError(
                f"a per-evaluation fidelity needs a RecNASEnv on the table back end, not "
                f"{self.env.unwrapped!r}"
            )
        return cast(tuple[int, int], check(fidelity))

    @property
    def exhausted(self) -> bool:
        """True once no further evaluation may start."""
        spent = self.budget.evaluations is not None and len(self.history) >= self.budget.evaluations
        late = self.budget.seconds is not None and self.total_seconds >= self.budget.seconds
        return spent or late

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        if self.exhausted and self._search_env.completes(action):
            raise BudgetExhausted(
                f"budget {self.budget} spent after {len(self.history)} evaluations and "
                f"{self.total_seconds:.0f} s of simulated training"
            )
        obs, reward, terminated, truncated, info = self.env.step(action)
        if info.get("invalid_action"):
            self.invalid_episodes += 1
            self._resume = None
        elif terminated and "arch" in info:
            full = self.full_fidelity
            fidelity = info.get("fidelity")
            fidelity = None if fidelity is None or tuple(fidelity) == full else tuple(fidelity)
            resume, self._resume = self._resume, None
            cost, resumed_from = float(info["cost_seconds"]), None
            if resume is not None and (resume.arch, resume.seed) == (info["arch"], info["seed"]):
                cost, resumed_from = max(cost - resume.seconds, 0.0), resume.fidelity
            self.total_seconds += cost
            key = (info.get("task"), info["arch"])
            reached = fidelity or full
            self._latest[key] = _Checkpoint(
                info["arch"], info["seed"], reached, info["cost_seconds"]
            )
            trial = Trial(
                number=len(self.history) + 1,
                arch=info["arch"],
                reward=self._scalar_reward(reward),
                val_recall=info["val_recall"],
                val_ndcg=info["val_ndcg"],
                seed=info["seed"],
                status=info["status"],
                cost_seconds=cost,
                total_seconds=self.total_seconds,
                source=info.get("source"),
                task=info.get("task"),
                fidelity=fidelity,
                resumed_from=resumed_from,
            )
            self.history.append(trial)
            self._recorded(trial, reward, info)
            if self.on_trial is not None:
                self.on_trial(trial)
        return obs, reward, terminated, truncated, info

    def _scalar_reward(self, reward: Any) -> float:
        """The reward a :class:`Trial` records (a subclass may reduce a vector reward)."""
        return float(reward)

    def _recorded(self, trial: Trial, reward: Any, info: dict[str, Any]) -> None:
        """Called with every new :class:`Trial` and the step's raw reward and info (a hook for
        subclasses that keep more, as the multi-objective runner does)."""

    def evaluate(
        self,
        arch: Architecture | Sequence[Any],
        fidelity: object = None,
        seed: int | None = None,
    ) -> Trial:
        """Play ``arch`` (or its decision values) as one episode; the recorded :class:`Trial`.

        ``fidelity``: ``(max_epochs, patience)`` or a name of :data:`nasenv.results.FIDELITIES`
        to answer at (table back end only; default: the env's own budget). An architecture
        evaluated before at a budget no larger in both entries (and smaller in one) is resumed:
        its seed again, only the further seconds charged (see the module docstring).

        ``seed``: the training seed (the env's ``eval_seed`` reset option, checked by the env;
        default: the env's seed policy draws it). A resume needs the same seed.

        Raises:
            ValueError: a budget the table cannot answer (the message names the allowed range),
                or decisions that are not an architecture of the space.
        """
        slots = self.space.slots
        values = self.space.decisions(arch) if isinstance(arch, Architecture) else list(arch)
        budget = None if fidelity is None else self.fidelity_budget(fidelity)
        if self.exhausted:
            raise BudgetExhausted(f"budget {self.budget} spent")
        if len(values) != len(slots):
            raise ValueError(f"expected {len(slots)} decisions, got {len(values)}")
        full = self.full_fidelity
        target = budget or full
        options: dict[str, Any] = {} if budget is None or budget == full else {"fidelity": budget}
        resume = self._resumable(values, target)
        if resume is not None and seed is not None and resume.seed != seed:
            resume = None  # another seed is another training
        if seed is not None:
            options["eval_seed"] = seed
        elif resume is not None and resume.seed is not None:
            options["eval_seed"] = resume.seed
        _, info = self.reset(options=options) if options else self.reset()
        self._resume = resume
        terminated = False
        while not terminated:  # the env may take forced decisions itself (skip_forced)
            slot = self.space.slot_index[info["slot"]]
            _, _, terminated, _, info = self.step(slots[slot].choices.index(values[slot]))
        if info.get("invalid_action"):
            raise ValueError(info["reason"])
        return self.history[-1]

    def _resumable(
        self, values: Sequence[Any], target: tuple[int, int] | None
    ) -> _Checkpoint | None:
        """The latest evaluation of the architecture ``values`` if ``target`` extends its
        budget (at least as large in both entries, not equal), else ``None``."""
        if target is None:
            return None
        try:
            name = Architecture.from_decisions(list(values), self.space.slots).to_string()
        except (ValueError, TypeError):
            return None  # not an architecture: the episode will say why
        task = getattr(self.env.unwrapped, "task", None)
        latest = self._latest.get((task if isinstance(task, str) else None, name))
        if latest is None or latest.fidelity is None or latest.fidelity == target:
            return None
        if all(have <= want for have, want in zip(latest.fidelity, target, strict=True)):
            return latest
        return None

    def best(self, task: str | None = None) -> Trial:
        """The trial with the highest reward (the earliest among ties) on ``task`` or, by
        default, over every trial (on a task set that compares rewards of different tasks:
        ask per task, or :meth:`best_by_task`). Only full-budget trials compete (a search
        without any: those of the largest budget it ran, see :func:`incumbent_trials`)."""
        trials = self.history if task is None else [t for t in self.history if t.task == task]
        if not trials:
            where = "" if task is None else f" on task {task!r}"
            raise RuntimeError(f"no architecture has been evaluated{where}")
        return max(incumbent_trials(trials), key=_rank)

    def tasks(self) -> list[str]:
        """The tasks evaluated so far, in the env's task order (``task_names`` of a task set;
        else first evaluation first); empty on a single-task env."""
        seen = list(dict.fromkeys(t.task for t in self.history if t.task is not None))
        order = list(getattr(self.env.unwrapped, "task_names", ()))
        return sorted(seen, key=lambda task: order.index(task) if task in order else len(order))

    def best_by_task(self) -> dict[str, Trial]:
        """:meth:`best` of every task evaluated (:meth:`tasks`); empty on a single-task env."""
        return {task: self.best(task) for task in self.tasks()}


def incumbent_trials(trials: Sequence[Trial]) -> list[Trial]:
    """The trials an incumbent is chosen from: the full-budget ones or, where there are none,
    those of the largest budget (``(max_epochs, patience)`` order) among them."""
    full = [trial for trial in trials if trial.full]
    if full or not trials:
        return full
    largest = max(cast(tuple[int, int], trial.fidelity) for trial in trials)
    return [trial for trial in trials if trial.fidelity == largest]


def _rank(trial: Trial) -> tuple[float, int]:
    """Sort key of the best trial: the highest reward, the earliest among ties."""
    return trial.reward, -trial.number


@dataclass
class SearchResult:
    """What a search found, and what it cost.

    Args:
        best: the trial with the highest reward (``None`` if nothing was evaluated; on a task
            set, over every task: see ``best_by_task``).
        test_metrics: test metrics of ``best`` on its own task's env. Keys ``test_recall`` and
            ``test_ndcg`` are measured (the table's trainings, live ones, or ``fresh_seeds``
            trained for real); ``predicted_test_recall`` and ``predicted_test_ndcg`` are a
            surrogate's predictions. A surrogate search with ``fresh_seeds`` has both.
        source: where the history's numbers come from (``Trial.source``: ``"table"``,
            ``"live"`` or ``"surrogate"``; several joined by ``"+"`` in that order; ``None``
            without trials). :attr:`predicted` says whether any of them are predictions.
        fresh_seeds: the seeds of the new trainings behind the measured test metrics (empty: the
            evaluation seeds').
        dataset: the dataset of a single-task env (its evaluator's); ``None`` on a task set.
        best_by_task: on a task set, the best trial of every task evaluated (empty otherwise).
        test_metrics_by_task: on a task set, each task's test metrics for its own best, on its
            own env (keys as ``test_metrics``).
        task_datasets: on a task set, the dataset of each task evaluated.
    """

    agent: str
    seed: int
    budget: Budget
    history: list[Trial]
    best: Trial | None  # None if the search ended without evaluating anything
    test_metrics: dict[str, float]
    wall_seconds: float
    invalid_episodes: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    fresh_seeds: list[int] = field(default_factory=list)
    dataset: str | None = None
    best_by_task: dict[str, Trial] = field(default_factory=dict)
    test_metrics_by_task: dict[str, dict[str, float]] = field(default_factory=dict)
    task_datasets: dict[str, str] = field(default_factory=dict)

    @property
    def predicted(self) -> bool:
        """Whether any reward or validation metric of the history is a prediction."""
        return any(trial.predicted for trial in self.history)

    def to_dict(self) -> dict[str, Any]:
        """Every field (trials as dicts) and ``predicted`` (:attr:`predicted`), for JSON."""
        return {**asdict(self), "predicted": self.predicted}

    def best_so_far(self) -> np.ndarray:
        """Best full-budget reward after each evaluation (for regret curves; NaN before the
        first full-budget one)."""
        rewards = [t.reward if t.full else -np.inf for t in self.history]
        best = np.maximum.accumulate(np.asarray(rewards, dtype=float)) if rewards else np.array([])
        return np.where(np.isneginf(best), np.nan, best)

    def summary(self) -> str:
        """The final report: the best architecture (on a task set, one line per task) with its
        validation and test metrics, each labelled measured or predicted."""
        best = self.best
        if best is None:
            return (
                f"{self.agent} (seed {self.seed}): no architecture evaluated "
                f"({self.invalid_episodes} invalid episodes)"
            )
        total = self.history[-1].total_seconds
        training = "predicted" if self.predicted else "simulated"
        if self.best_by_task:
            return self._task_summary(total, training)
        lines = [
            f"{self.agent} (seed {self.seed}): {len(self.history)} evaluations, "
            f"{total / 3600:.2f} h of {training} training ({best.total_seconds / 3600:.2f} h to "
            f"the best), {self.wall_seconds:.1f} s wall",
            f"best (evaluation {best.number}): {best.arch}",
            f"  {_validation_text(best)}",
            *(f"  {line}" for line in _test_lines(self.test_metrics, self.fresh_seeds)),
        ]
        if best.predicted and "test_recall" not in self.test_metrics:
            lines += [
                f"  to measure it for real: {_measure_command(best.arch, self.dataset)}",
                f"  (or rerun the search with --fresh-seeds N: N trainings, seeds "
                f"{FRESH_SEED_START}, {FRESH_SEED_START + 1}, ..., reported as measured)",
            ]
        return "\n".join(lines)

    def _task_summary(self, total: float, training: str) -> str:
        """:meth:`summary` on a task set: a line per task."""
        counts = Counter(trial.task for trial in self.history)
        lines = [
            f"{self.agent} (seed {self.seed}): {len(self.history)} evaluations on "
            f"{len(self.best_by_task)} tasks, {total / 3600:.2f} h of {training} training, "
            f"{self.wall_seconds:.1f} s wall",
            "best per task (rewards of different tasks are not compared):",
        ]
        for task, best in self.best_by_task.items():
            metrics = self.test_metrics_by_task.get(task, {})
            parts = [_validation_text(best), *_test_lines(metrics, self.fresh_seeds)]
            if best.predicted and "test_recall" not in metrics:
                command = _measure_command(best.arch, self.task_datasets.get(task, task))
                parts.append(f"to measure it for real: {command} (or --fresh-seeds N)")
            lines.append(
                f"  {task}: evaluation {best.number} (best of {counts[task]}) {best.arch}; "
                + "; ".join(parts)
            )
        return "\n".join(lines)


def _validation_text(trial: Trial) -> str:
    """Validation metrics of ``trial``, labelled predicted where they are."""
    text = f"validation Recall@20 {trial.val_recall:.4f}, NDCG@20 {trial.val_ndcg:.4f}"
    return f"predicted {text} ({trial.source}, not measured)" if trial.predicted else text


def _test_lines(metrics: dict[str, float], fresh_seeds: Sequence[int]) -> list[str]:
    """Test metrics as text: predicted ones, then measured ones (labelled so beside a
    prediction), with the fresh seeds they were trained with."""
    lines = []
    predicted = "predicted_test_recall" in metrics
    if predicted:
        lines.append(
            f"predicted test Recall@20 {metrics['predicted_test_recall']:.4f}, "
            f"NDCG@20 {metrics['predicted_test_ndcg']:.4f}"
        )
    if "test_recall" in metrics:
        seeds = f" ({_seeds_text(fresh_seeds)}, trained for real)" if fresh_seeds else ""
        lines.append(
            f"{'measured ' if predicted else ''}test Recall@20 {metrics['test_recall']:.4f}, "
            f"NDCG@20 {metrics['test_ndcg']:.4f}{seeds}"
        )
    return lines


def _seeds_text(seeds: Sequence[int]) -> str:
    """``seed 1000``, ``seeds 1000-1002`` (consecutive) or ``seeds 1000, 1005``."""
    seeds = list(seeds)
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def _measure_command(arch: str, dataset: str | None) -> str:
    """The command that trains a predicted architecture for real (the first fresh seed, the
    tabulation budget the surrogate predicts)."""
    return evaluate_command(arch, dataset, seed=FRESH_SEED_START, fidelity="tabulation")


def task_env(runner: SearchRunner, task: str | None = None) -> Any:
    """The env that evaluated ``task``'s trials: ``TaskSetEnv.envs[task]`` on a task set, else
    the runner's unwrapped env (``task=None``)."""
    unwrapped = runner.env.unwrapped
    if task is None:
        return unwrapped
    envs = getattr(unwrapped, "envs", None)
    if not isinstance(envs, Mapping) or task not in envs:
        raise ValueError(f"task {task!r} is not a task of {unwrapped!r}")
    return envs[task]


def measured_test_metrics(
    evaluator: Evaluator, arch: Architecture | str, seeds: Sequence[int]
) -> dict[str, float]:
    """The mean over ``seeds`` of ``evaluator.test_metrics`` (a live evaluator: real trainings)."""
    if not seeds:
        raise ValueError("measured_test_metrics needs at least one seed")
    if isinstance(arch, str):
        arch = Architecture.from_string(arch)
    metrics = [evaluator.test_metrics(arch, int(seed)) for seed in seeds]
    return {key: float(np.mean([m[key] for m in metrics])) for key in metrics[0]}


def final_test_metrics(
    runner: SearchRunner,
    arch: str,
    fresh_seeds: Sequence[int] | None = None,
    task: str | None = None,
) -> dict[str, float]:
    """Test metrics of the selected architecture on the env of ``task`` (:func:`task_env`).

    Without ``fresh_seeds``: over the env's evaluation seeds (table: the stored trainings; live:
    the search's trainings; surrogate: the prediction, keyed ``predicted_test_*``). With
    ``fresh_seeds`` (for example :func:`nasenv.evaluators.fresh_seeds`), averaged over new
    trainings with those seeds: on the live back end through the env; on the surrogate back end
    the prediction plus the measured ``test_recall`` and ``test_ndcg`` of real trainings through
    its :meth:`~nasenv.evaluators.SurrogateEvaluator.live_evaluator` (same dataset, the
    tabulation budget). The table cannot train: it answers only its stored seeds.
    """
    env = task_env(runner, task)
    if not fresh_seeds:
        return env.test_metrics(arch)
    seeds = [int(seed) for seed in fresh_seeds]
    evaluator = env.evaluator
    if isinstance(evaluator, SurrogateEvaluator):
        live = evaluator.live_evaluator()
        return {**env.test_metrics(arch), **measured_test_metrics(live, arch, seeds)}
    return env.test_metrics(arch, seeds)


def _source(history: Sequence[Trial]) -> str | None:
    """The sources of ``history``'s trials, joined by ``+`` in :data:`SOURCES` order."""
    seen = {trial.source for trial in history if trial.source is not None}
    known = [source for source in SOURCES if source in seen]
    return "+".join(known + sorted(seen - set(SOURCES))) or None


def run_search(
    agent: SearchAgent,
    env: gym.Env,
    budget: Budget,
    seed: int = 0,
    on_trial: Callable[[Trial], None] | None = None,
    fresh_seeds: Sequence[int] | None = None,
) -> SearchResult:
    """Run ``agent`` (an :class:`agents.base.Agent`, or anything with ``search(runner)``: see
    :class:`SearchAgent`) on ``env`` until ``budget`` is spent."""
    runner = SearchRunner(env, budget, on_trial)
    runner.reset(seed=seed)
    runner.action_space.seed(seed)
    start = time.perf_counter()
    with contextlib.suppress(BudgetExhausted):  # an agent may stop by running into the budget
        agent.search(runner)
    wall = time.perf_counter() - start
    best = runner.best() if runner.history else None
    fresh = [int(s) for s in fresh_seeds] if fresh_seeds else []
    by_task = runner.best_by_task()
    test_by_task = {
        task: final_test_metrics(runner, trial.arch, fresh, task) for task, trial in by_task.items()
    }
    if best is None:
        test: dict[str, float] = {}
    elif best.task in test_by_task:  # the best overall is the best of its own task
        test = test_by_task[best.task]
    else:
        test = final_test_metrics(runner, best.arch, fresh, best.task)
    unwrapped = runner.env.unwrapped
    task_set = isinstance(getattr(unwrapped, "envs", None), Mapping)
    hyperparameters = getattr(agent, "hyperparameters", None)
    return SearchResult(
        agent=str(getattr(agent, "name", type(agent).__name__)),
        seed=seed,
        budget=budget,
        history=list(runner.history),
        best=best,
        test_metrics=test,
        wall_seconds=wall,
        invalid_episodes=runner.invalid_episodes,
        hyperparameters=hyperparameters() if callable(hyperparameters) else {},
        source=_source(runner.history),
        fresh_seeds=fresh if best is not None else [],
        dataset=None if task_set else _dataset_name(unwrapped),
        best_by_task=by_task,
        test_metrics_by_task=test_by_task,
        task_datasets={
            task: name
            for task in by_task
            if (name := _dataset_name(task_env(runner, task))) is not None
        },
    )


def _dataset_name(env: Any) -> str | None:
    """The dataset of ``env``'s evaluator, if it has one."""
    return getattr(getattr(env, "evaluator", None), "dataset_name", None)
