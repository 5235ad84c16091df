"""Task sets: one book task drawn per episode, for transfer and meta-learning across tasks.

A :class:`TaskSetEnv` holds one :class:`~nasenv.env.RecNASEnv` per task (same search space,
same slots and actions). Every :meth:`~TaskSetEnv.reset` draws the episode's task uniformly from
the env's ``np_random`` (or takes ``options={"task": name}``) and delegates the episode to that
task's env; with ``task_in_obs=True`` the observation ends with a one-hot of the task. The
registry's split into training and held-out tasks is :data:`nasenv.data.TRAINING_TASKS` and
:data:`nasenv.data.HELD_OUT_TASKS`.

    env = TaskSetEnv(["Books-20core", "Books-USA-20core"], seed_policy="random")
    obs, info = env.reset(seed=0)  # info["task"] names the episode's task
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from nasenv.env import RecNASEnv
from nasenv.space import Architecture, Choice, SearchSpace


class TaskSetEnv(gym.Env[np.ndarray, int]):
    """Architecture search on a task drawn per episode from a set of book tasks.

    Args:
        tasks: registered dataset names (each gets ``RecNASEnv(dataset=name, **env_kwargs)``), or
            a mapping from task name to a ready :class:`RecNASEnv` (for example on another table).
        task_in_obs: append a one-hot of the episode's task (in the order of ``tasks``) to the
            observation. Default ``True``.
        **env_kwargs: arguments of every task's :class:`RecNASEnv` (``backend``, ``metric``,
            ``seed_policy``, ``space``, ...), when ``tasks`` are names.

    The action space, masks, rewards, episode end and ``info`` entries are those of
    :class:`RecNASEnv`; ``info["task"]`` names the episode's task (and ``info["source"]`` says,
    as on :class:`RecNASEnv`, whether its numbers are measured or predicted).
    ``total_cost_seconds`` and ``evaluations`` add up over the tasks. Rewards of different
    tasks are not comparable: a search keeps a best per task (:class:`agents.runner.SearchRunner`).
    """

    # declared as gymnasium.Env declares it (not ClassVar, which mypy would refuse): read from
    # the class by gymnasium.make, shared by design
    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        tasks: Sequence[str] | Mapping[str, RecNASEnv],
        task_in_obs: bool = True,
        **env_kwargs: Any,
    ) -> None:
        if isinstance(tasks, Mapping):
            if env_kwargs:
                raise ValueError(
                    f"env arguments {sorted(env_kwargs)} apply only to tasks given by name"
                )
            envs = dict(tasks)
        else:
            if isinstance(tasks, str):
                raise ValueError(f"tasks must be a sequence of names, not the string {tasks!r}")
            envs = {name: RecNASEnv(dataset=name, **env_kwargs) for name in tasks}
        if not envs:
            raise ValueError("tasks is empty; give at least one task")
        spaces_ = {env.space.name for env in envs.values()}
        if len(spaces_) != 1:
            raise ValueError(f"every task must share one search space, got {sorted(spaces_)}")
        self.envs: dict[str, RecNASEnv] = envs
        self.task_names: tuple[str, ...] = tuple(envs)
        self.task_in_obs = task_in_obs
        first = next(iter(envs.values()))
        self.action_space = first.action_space
        size = spaces.flatdim(first.observation_space) + (len(envs) if task_in_obs else 0)
        self.observation_space = spaces.Box(0.0, 1.0, (size,), dtype=np.float32)
        self.render_mode = first.render_mode
        self.task: str = self.task_names[0]
        self._seeded = False

    # -- the current task's env ---------------------------------------------------------------

    @property
    def current(self) -> RecNASEnv:
        return self.envs[self.task]

    @property
    def space(self) -> SearchSpace:
        return self.current.space

    @property
    def decisions(self) -> list[Choice]:
        return self.current.decisions

    @property
    def evaluator(self) -> Any:
        return self.current.evaluator

    @property
    def total_cost_seconds(self) -> float:
        return sum(env.total_cost_seconds for env in self.envs.values())

    @property
    def evaluations(self) -> int:
        return sum(env.evaluations for env in self.envs.values())

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        if not self.task_in_obs:
            return obs
        task = np.zeros(len(self.task_names), dtype=np.float32)
        task[self.task_names.index(self.task)] = 1.0
        return np.concatenate([obs, task])

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        return {
            **info,
            "task": self.task,
            "total_cost_seconds": self.total_cost_seconds,
            "evaluations": self.evaluations,
        }

    # -- the Gymnasium API ---------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            # Every task env gets its own stream, derived from this env's: one seed fixes all.
            children = self.np_random.integers(2**31, size=len(self.envs))
            for env, child in zip(self.envs.values(), children, strict=True):
                env.reset(seed=int(child))
            self._seeded = True
        task = (options or {}).get("task")
        if task is None:
            task = self.task_names[int(self.np_random.integers(len(self.task_names)))]
        elif task not in self.envs:
            raise ValueError(f"unknown task {task!r}; this env's tasks: {list(self.task_names)}")
        self.task = task
        obs, info = self.current.reset()
        return self._observe(obs), self._info(info)

    def step(self, action: int) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.current.step(action)
        return self._observe(obs), reward, terminated, truncated, self._info(info)

    def action_masks(self) -> np.ndarray:
        """Valid actions of the current slot (see :meth:`RecNASEnv.action_masks`)."""
        return self.current.action_masks()

    def completes(self, action: object) -> bool:
        """Whether ``action`` would complete the architecture (see :meth:`RecNASEnv.completes`)."""
        return self.current.completes(action)

    def test_metrics(
        self,
        arch: Architecture | str | None = None,
        seed: int | Sequence[int] | None = None,
        task: str | None = None,
    ) -> dict[str, float]:
        """Test metrics on ``task``'s env (default: the current task's; see
        :meth:`RecNASEnv.test_metrics`). Without ``arch``: the last architecture of that task.

        A searched architecture is reported on the task it was evaluated on: ``info["task"]``
        of its episode (:class:`agents.runner.Trial` records it)."""
        if task is not None and task not in self.envs:
            raise ValueError(f"unknown task {task!r}; this env's tasks: {list(self.task_names)}")
        return self.envs[self.task if task is None else task].test_metrics(arch, seed)

    def render(self) -> str | np.ndarray | None:
        out = self.current.render()
        return f"[{self.task}] {out}" if isinstance(out, str) else out
