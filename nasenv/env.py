"""The Gymnasium environment: build a GNN book recommender one decision at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from nasenv.data import DEFAULT_DATASET
from nasenv.evaluators import (
    METRICS,
    Evaluation,
    Evaluator,
    LiveEvaluator,
    SurrogateEvaluator,
    TableEvaluator,
)
from nasenv.results import FIDELITIES
from nasenv.space import (
    CHOICE_OFFSETS,
    FULL,
    SLOTS,
    SPACES,
    Architecture,
    Choice,
    SearchSpace,
)
from nasenv.surrogate import load_surrogate

BACKENDS = ("table", "surrogate", "live")
SEED_POLICIES = ("fixed", "random", "mean")
INVALID_ACTIONS = ("penalize", "raise")
N_ACTIONS = max(len(slot.choices) for slot in SLOTS)


def _check(name: str, value: object, allowed: tuple | list) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {list(allowed)}")


class RecNASEnv(gym.Env[np.ndarray, int]):
    """
    ## Description

    Neural architecture search for graph-neural-network book recommenders. An episode builds one
    recommender by fixing its design decisions in a fixed order (``nasenv.space.SLOTS``): up to
    three message-passing layers from PyTorch Geometric (``lgconv``, ``gcn``, ``sage``, ``gin``,
    ``gat``, or ``stop``) with GraphSAGE aggregators, how layer outputs are combined, embedding
    size, item input (ID embedding, MiniLM text features, or both), loss, learning rate and L2
    regularisation. When the last decision is made the recommender is trained and its validation
    quality on Book-Crossing is the reward: looked up in the benchmark table (``backend="table"``,
    every architecture of the core space trained for real beforehand) or trained now
    (``backend="live"``).

    ## Action Space

    ``Discrete(6)``: the index of a choice of the current slot (slots have 2 to 6 choices). The
    valid actions of the current slot are ``info["action_mask"]`` (``np.int8``) and
    ``action_masks()`` (bool, for sb3-contrib's ``MaskablePPO``). Validity depends on earlier
    decisions (after ``stop`` only ``stop``; an aggregator only for ``sage``; ``combine=last``
    without layers) and on the search space (``space="core"`` or ``"full"``).

    ## Observation Space

    ``Box(0, 1, (n,), float32)``, flat: for every slot a one-hot block of its choices (zeros while
    undecided), then a one-hot of the current slot (last entry: episode finished).
    ``n = sum of choices over slots + number of slots + 1`` (= 65).

    ## Starting State

    No decision made; the current slot is ``layer1``. Resetting draws nothing random unless the
    seed policy is ``random``.

    ## Rewards

    0 for every decision but the last. The last returns the validation Recall@20 (``metric=
    "recall"``) or NDCG@20 (``metric="ndcg"``) of the trained architecture, in [0, 1]; a training
    that diverged scores 0. An invalid action, with ``invalid_action="penalize"``, ends the episode
    with reward ``invalid_reward`` (default -1). Test metrics never enter the reward: they are
    available through :meth:`test_metrics` for a finished architecture.

    ## Episode End

    Terminates after the 12th decision, or at an invalid action (``"penalize"``). Never truncates.

    ## Information

    Every step: ``action_mask``, ``slot`` (name of the current slot, ``None`` when done),
    ``total_cost_seconds`` and ``evaluations`` of this env instance. On termination by an
    architecture also: ``arch`` (canonical string), ``arch_index`` (index in the full space),
    ``hash``, ``seed`` (training seed; ``None`` under the ``mean`` policy), ``status``
    (``ok``/``failed``), ``val_recall``,
    ``val_ndcg``, ``cost_seconds`` (training seconds of this evaluation) and ``n_params``. On an
    invalid action: ``invalid_action=True``.

    ## Arguments

    ```python
    gym.make("RecNAS-Books-v0", dataset="Books-20core", backend="live", metric="recall",
             fidelity="tabulation", seed_policy="fixed", space="core")
    ```

    * ``dataset``: a registered task (``nasenv.data.DATASETS``). Default ``"Books-20core"``.
    * ``backend``: ``"table"`` (the shipped benchmark table; core space only), ``"surrogate"``
      (the shipped surrogate model of the task; any space, ``fidelity="tabulation"`` only) or
      ``"live"`` (train for real, cached on disk). Default ``"table"``.
    * ``metric``: ``"recall"`` or ``"ndcg"``. Default ``"recall"``.
    * ``fidelity``: a key of ``nasenv.train.FIDELITIES`` (the table answers budgets up to its
      own, ``"tabulation"``). Default ``"tabulation"``.
    * ``seed_policy``: ``"fixed"`` (always ``eval_seed``), ``"random"`` (one of the seeds drawn
      from ``np_random`` per evaluation) or ``"mean"`` (the mean over the seeds; the cost is that
      of every seed's training). Default ``"fixed"``.
    * ``space``: ``"core"`` or ``"full"`` (or a ``SearchSpace``). Default ``"core"``.
    * ``eval_seed``: seed of the ``fixed`` policy. Default 0.
    * ``n_seeds``: the seeds ``0 .. n_seeds - 1`` of the ``random`` and ``mean`` policies.
      Default: every seed of the table, 3 for live training.
    * ``invalid_action``: ``"penalize"`` or ``"raise"`` (``ValueError``). Default ``"penalize"``.
    * ``invalid_reward``: reward of an invalid action. Default -1.0.
    * ``evaluator``: any ``nasenv.evaluators.Evaluator``; overrides ``dataset``, ``backend`` and
      ``fidelity`` (used by tests with tiny data). Default ``None``.
    * ``cache``: SQLite path of the live back end's cache (``None``: no cache). Default: see
      ``nasenv.evaluators.default_cache_path``.

    ## Version History

    * v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}

    def __init__(
        self,
        dataset: str = DEFAULT_DATASET,
        backend: str = "table",
        metric: str = "recall",
        fidelity: str = "tabulation",
        seed_policy: str = "fixed",
        space: str | SearchSpace = "core",
        eval_seed: int = 0,
        n_seeds: int | None = None,
        invalid_action: str = "penalize",
        invalid_reward: float = -1.0,
        evaluator: Evaluator | None = None,
        cache: str | None = "default",
        render_mode: str | None = None,
    ) -> None:
        _check("backend", backend, BACKENDS)
        _check("metric", metric, METRICS)
        _check("fidelity", fidelity, sorted(FIDELITIES))
        _check("seed_policy", seed_policy, SEED_POLICIES)
        if not isinstance(space, SearchSpace):
            _check("space", space, sorted(SPACES))
            space = SPACES[space]
        _check("invalid_action", invalid_action, INVALID_ACTIONS)
        _check("render_mode", render_mode, [None, *self.metadata["render_modes"]])
        if evaluator is None:
            if backend == "table":
                evaluator = TableEvaluator(dataset, fidelity)
            elif backend == "surrogate":
                if fidelity != "tabulation":
                    raise ValueError(
                        f"the surrogate predicts the 'tabulation' budget only, not {fidelity!r}"
                    )
                evaluator = SurrogateEvaluator(load_surrogate(dataset), dataset)
            else:
                evaluator = LiveEvaluator(dataset, fidelity, cache)
        if isinstance(evaluator, TableEvaluator) and evaluator.table.space_name != space.name:
            raise ValueError(
                f"the {evaluator.dataset_name} table holds the {evaluator.table.space_name!r} "
                f"space, not {space.name!r}; use backend='live' for it"
            )
        stored_seeds = getattr(evaluator, "seeds", None)
        if n_seeds is None:
            n_seeds = len(stored_seeds) if stored_seeds else 3
        if n_seeds < 1:
            raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
        self.seeds = tuple(range(n_seeds)) if seed_policy != "fixed" else (eval_seed,)
        if stored_seeds is not None and not set(self.seeds) <= set(stored_seeds):
            raise ValueError(
                f"seeds {list(self.seeds)} are not all in the table; it holds {list(stored_seeds)}"
            )
        self.evaluator = evaluator
        self.metric, self.seed_policy, self.space = metric, seed_policy, space
        self.eval_seed, self.n_seeds = eval_seed, n_seeds
        self.invalid_action, self.invalid_reward = invalid_action, float(invalid_reward)
        self.render_mode = render_mode

        self.action_space = spaces.Discrete(N_ACTIONS)
        size = CHOICE_OFFSETS[-1] + len(SLOTS) + 1
        self.observation_space = spaces.Box(0.0, 1.0, (size,), dtype=np.float32)
        self.decisions: list[Choice] = []
        # Per-prefix caches: a space has a few thousand decision prefixes, and table-mode
        # episodes are cheap enough that recomputing masks and encodings would dominate.
        self._masks: dict[tuple | None, tuple[np.ndarray, np.ndarray]] = {}
        self._finished: dict[tuple[Choice, ...], tuple[Architecture, dict[str, Any]]] = {}
        self._obs = np.zeros(size, dtype=np.float32)
        self.done = True
        self._reset_called = False
        self.total_cost_seconds = 0.0
        self.evaluations = 0
        self.last_arch: Architecture | None = None
        self.last_seed: int | None = None

    def _masks_now(self) -> tuple[np.ndarray, np.ndarray]:
        """(bool, int8) read-only masks over the actions of the current slot."""
        key = None if self.done else self.space.mask_key(self.decisions)
        if key not in self._masks:
            mask = np.zeros(N_ACTIONS, dtype=bool)
            if not self.done:
                valid = self.space.mask(self.decisions)
                mask[: len(valid)] = valid
            as_int8 = mask.astype(np.int8)
            mask.setflags(write=False)
            as_int8.setflags(write=False)
            self._masks[key] = (mask, as_int8)
        return self._masks[key]

    def _mask(self) -> np.ndarray:
        return self._masks_now()[0]

    def action_masks(self) -> np.ndarray:
        """Valid actions of the current slot as booleans (all ``False`` once the episode ended)."""
        return self._mask().copy()

    def _observation(self) -> np.ndarray:
        """The encoding, kept up to date in place by :meth:`reset` and :meth:`step`."""
        return self._obs.copy()

    def _update_observation(self) -> None:
        n = len(self.decisions)
        if n == 0:
            self._obs[:] = 0.0
        else:
            slot = n - 1
            self._obs[CHOICE_OFFSETS[slot] + SLOTS[slot].choices.index(self.decisions[-1])] = 1.0
        self._obs[CHOICE_OFFSETS[-1] :] = 0.0
        self._obs[CHOICE_OFFSETS[-1] + (len(SLOTS) if self.done else n)] = 1.0

    def _info(self) -> dict[str, Any]:
        return {
            "action_mask": self._masks_now()[1].copy(),
            "slot": None if self.done else SLOTS[len(self.decisions)].name,
            "total_cost_seconds": self.total_cost_seconds,
            "evaluations": self.evaluations,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.decisions, self.done, self._reset_called = [], False, True
        self._update_observation()
        return self._observation(), self._info()

    def step(self, action: int) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if not self._reset_called:
            raise RuntimeError("step() called before reset(); call env.reset() first")
        if self.done:
            raise RuntimeError("step() called after the episode ended; call env.reset() first")
        slot = SLOTS[len(self.decisions)]
        mask = self._mask()
        valid = isinstance(action, (int, np.integer)) and 0 <= int(action) < N_ACTIONS
        if not (valid and mask[int(action)]):
            allowed = [i for i in range(N_ACTIONS) if mask[i]]
            message = (
                f"action {action!r} is invalid for slot {slot.name!r} after {self.decisions}; "
                f"valid actions: {allowed} (= {[slot.choices[i] for i in allowed]})"
            )
            if self.invalid_action == "raise":
                raise ValueError(message)
            self.done = True
            self._update_observation()
            info = {**self._info(), "invalid_action": True, "reason": message}
            return self._observation(), self.invalid_reward, True, False, info
        self.decisions.append(slot.choices[int(action)])
        if len(self.decisions) < len(SLOTS):
            self._update_observation()
            return self._observation(), 0.0, False, False, self._info()
        return self._finish()

    def _evaluate(self, arch: Architecture) -> Evaluation:
        """One evaluation under the seed policy (``mean``: averaged scores, summed cost)."""
        if self.seed_policy == "fixed":
            return self.evaluator.evaluate(arch, self.eval_seed)
        if self.seed_policy == "random":
            return self.evaluator.evaluate(arch, int(self.np_random.integers(self.n_seeds)))
        runs = [self.evaluator.evaluate(arch, seed) for seed in self.seeds]
        failed = [run for run in runs if run.status != "ok"]
        return Evaluation(
            arch=runs[0].arch,
            seed=None,
            status="failed" if failed else "ok",
            reason="; ".join(run.reason for run in failed),
            val_recall=float(np.mean([run.val_recall for run in runs])),
            val_ndcg=float(np.mean([run.val_ndcg for run in runs])),
            cost_seconds=float(sum(run.cost_seconds for run in runs)),
            n_params=runs[0].n_params,
        )

    def _identity(self) -> tuple[Architecture, dict[str, Any]]:
        """The finished architecture and its identifying info entries (cached per architecture)."""
        key = tuple(self.decisions)
        if key not in self._finished:
            arch = Architecture.from_decisions(self.decisions)
            names = {"arch": arch.to_string(), "arch_index": FULL.index(arch), "hash": arch.hash}
            self._finished[key] = (arch, names)
        return self._finished[key]

    def _finish(self) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        arch, names = self._identity()
        evaluation = self._evaluate(arch)
        seed = evaluation.seed
        self.done = True
        self._update_observation()
        self.total_cost_seconds += evaluation.cost_seconds
        self.evaluations += 1
        self.last_arch, self.last_seed = arch, seed
        reward = evaluation.score(self.metric)  # FAILED_SCORE for a diverged training
        info = {
            **self._info(),
            **names,
            "seed": seed,
            "status": evaluation.status,
            "val_recall": evaluation.val_recall,
            "val_ndcg": evaluation.val_ndcg,
            "cost_seconds": evaluation.cost_seconds,
            "n_params": evaluation.n_params,
        }
        return self._observation(), float(reward), True, False, info

    def test_metrics(
        self,
        arch: Architecture | str | None = None,
        seed: int | Sequence[int] | None = None,
    ) -> dict[str, float]:
        """Test Recall@20 and NDCG@20 of a finished architecture (default: the last one), for
        ``seed`` (one seed, or the mean over several) or, by default, the seed of its evaluation
        (the mean over the env's seeds under ``mean``).

        Never used for rewards; meant for reporting the architecture a search selected.
        """
        if arch is None:
            if self.last_arch is None:
                raise RuntimeError("no architecture has been evaluated yet")
            arch, seed = self.last_arch, self.last_seed if seed is None else seed
        if isinstance(arch, str):
            arch = Architecture.from_string(arch)
        if seed is None:
            seeds = list(self.seeds)
        else:
            seeds = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
        metrics = [self.evaluator.test_metrics(arch, int(s)) for s in seeds]
        return {key: float(np.mean([m[key] for m in metrics])) for key in metrics[0]}

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            names = [f"{s.name}={v}" for s, v in zip(SLOTS, self.decisions)]
            return " ".join(names) or "(no decision yet)"
        return None
