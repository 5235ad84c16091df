"""The Gymnasium environment: build a GNN book recommender one decision at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, SupportsFloat, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from nasenv.data import DEFAULT_DATASET, BooksDataset, adapt_seconds, adapted_encoders
from nasenv.evaluators import (
    METRICS,
    Evaluation,
    Evaluator,
    LiveEvaluator,
    SurrogateEvaluator,
    TableEvaluator,
)
from nasenv.results import FIDELITIES
from nasenv.space import ENCODER_SLOTS, FROZEN, SLOTS, SPACES, Architecture, Choice, SearchSpace
from nasenv.surrogate import SURROGATE_VERSIONS, load_surrogate
from nasenv.table import RELEASES, load_table

BACKENDS = ("table", "surrogate", "live")
SEED_POLICIES = ("fixed", "random", "mean")
INVALID_ACTIONS = ("penalize", "raise", "wrap")
N_ACTIONS = max(len(slot.choices) for slot in (*SLOTS, *ENCODER_SLOTS))
MAX_EPISODE_STEPS = len(SLOTS)
"""No episode of a version 0 space is longer: one step per slot (fewer with ``skip_forced`` or an
invalid action); those of a version 1 space (``core-v1``, ``full-v1``) have 13 slots."""
CELL = 12
"""Pixels per (slot, choice) cell of the ``rgb_array`` rendering."""


def as_action(action: object) -> int:
    """The integer an action denotes.

    Accepted: everything ``Discrete.contains`` accepts as an integer (a Python ``int``, ``bool``
    included as Gymnasium counts it; a NumPy integer scalar; a 0-d NumPy integer array, which is
    what Stable-Baselines3's ``model.predict`` returns for one observation), and any other 0-d
    array or tensor whose ``item()`` is an ``int`` (a 0-d integer ``torch.Tensor``, on any
    device). Anything else (floats, strings, ``None``, arrays with a dimension, boolean arrays)
    raises ``TypeError``: a value of the wrong kind is a bug in the caller, never a decision.
    """
    if isinstance(action, (int, np.integer)):
        return int(action)
    if getattr(action, "ndim", None) == 0 and hasattr(action, "item"):
        value = action.item()
        if type(value) is int:
            return value
    hint = ""
    if getattr(action, "shape", None) == (1,):
        hint = " (an array of one action: pass action[0] or action.item())"
    raise TypeError(
        f"action {action!r} of type {type(action).__name__} is not an integer action{hint}; "
        "RecNASEnv takes a Python int, a NumPy integer scalar, or a 0-d integer array or tensor"
    )


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
    every architecture of the core space trained for real beforehand), predicted by the
    surrogate (``backend="surrogate"``) or trained now (``backend="live"``).

    ## Action Space

    ``Discrete(6)``: the index of a choice of the current slot (slots have 2 to 6 choices). The
    valid actions of the current slot are ``info["action_mask"]`` (``np.int8``) and
    ``action_masks()`` (bool, for sb3-contrib's ``MaskablePPO``; through Gymnasium wrappers
    ``env.unwrapped.action_masks()`` or ``env.get_wrapper_attr("action_masks")()``). Validity
    depends on earlier decisions (after ``stop`` only ``stop``; an aggregator only for ``sage``;
    ``combine=last`` without layers) and on the search space (``space="core"`` or ``"full"``).

    An action is any value :func:`as_action` accepts: what ``action_space.contains`` accepts (a
    Python int, a NumPy integer scalar, a 0-d integer array such as SB3's ``model.predict``
    returns) and 0-d integer tensors. Any other type raises ``TypeError`` whatever
    ``invalid_action`` says; an integer that is not a valid choice here is an *invalid action*.

    Once an episode has ended, the mask (``info["action_mask"]`` of the terminal step and
    ``action_masks()``) is that of the first slot of the next episode, never all zeros, so that a
    vector env in next-step autoreset mode hands its agent a usable mask for the (ignored) action
    of the reset step. Stepping an ended episode still raises: call ``reset()``.

    ## Observation Space

    ``Box(0, 1, (n,), float32)``, flat: for every slot a one-hot block of its choices (zeros while
    undecided), then a one-hot of the current slot (last entry: episode finished).
    ``n = sum of choices over slots + number of slots + 1`` (= 65; 69 in a version 1 space).

    ## Starting State

    No decision made; the current slot is ``layer1`` (with ``skip_forced``, the first slot with a
    real choice). Resetting draws nothing random; the ``random`` seed policy draws each
    evaluation's training seed from ``np_random`` when the architecture is complete.

    ## Rewards

    0 for every decision but the last. The last returns the validation Recall@20 (``metric=
    "recall"``) or NDCG@20 (``metric="ndcg"``) of the trained architecture, in [0, 1]; a training
    that diverged scores 0. An invalid action, with ``invalid_action="penalize"``, ends the episode
    with reward ``invalid_reward`` (default -1). Test metrics never enter the reward: they are
    available through :meth:`test_metrics` for a finished architecture.

    ## Episode End

    Terminates when the architecture is complete (after the 12th decision; earlier steps with
    ``skip_forced``), or at an invalid action (``"penalize"``). Never truncates by itself; the
    registered ids set ``max_episode_steps=12``, so Gymnasium's ``TimeLimit`` also flags the 12th
    step ``truncated``: both are then ``True`` and, as Gymnasium documents, ``terminated`` is what
    counts (nothing to bootstrap from).

    ## Information

    Every step: ``action_mask``, ``slot`` (name of the current slot, ``None`` when done),
    ``total_cost_seconds`` and ``evaluations`` of this env instance. On termination by an
    architecture also: ``arch`` (canonical string), ``full_index`` (its index in the *full*
    space, ``nasenv.space.FULL``; not a table row: use ``table.index(arch)`` for that), ``hash``,
    ``seed`` (training seed; ``None`` under the ``mean`` policy), ``status`` (``ok``/``failed``),
    ``val_recall``, ``val_ndcg``, ``cost_seconds`` (what this evaluation costs a search: seconds
    of training and validation up to the stopping epoch, never of the test passes), ``cost_version``
    (the cost definition those seconds follow, ``nasenv.results.COST_VERSION``: the shipped tables
    and surrogate are version 1, whose seconds also hold the test passes of improving epochs),
    ``n_params`` and ``source``: where these numbers (and the reward) come from,
    ``nasenv.evaluators.SOURCES``: ``"table"`` (real trainings stored in the benchmark table),
    ``"live"`` (a real training, now or from the cache) or ``"surrogate"`` (a model's
    *prediction*: on the surrogate back end the reward, ``val_recall``, ``val_ndcg`` and
    ``cost_seconds`` are predicted, never measured; ``nasenv.evaluators.is_predicted(source)``).
    In a version 1 space also ``adapt_seconds``: the one-off cost of the architecture's item
    features (seconds of the encoder's adaptation on 2 cores, :meth:`adapt_seconds`; 0 for
    ``frozen``), paid once per task and so kept out of ``cost_seconds``: a cost-aware agent
    charges it at the first architecture with that encoder.
    On an invalid action: ``invalid_action=True`` and ``reason``; on a step whose action
    ``invalid_action="wrap"`` replaced: ``wrapped_action`` (the action taken).

    Test metrics (:meth:`test_metrics`) are keyed ``test_recall`` and ``test_ndcg`` where they
    were measured (table, live) and ``predicted_test_recall`` and ``predicted_test_ndcg`` on the
    surrogate back end.

    ## Arguments

    ```python
    gym.make("RecNAS-Books-v0", dataset="Books-20core", backend="table", metric="recall",
             fidelity="tabulation", seed_policy="random", space="core")
    ```

    ``gym.make("RecNAS-Books-v0")`` is the leaderboard's protocol
    (:data:`nasenv.leaderboard.PROTOCOL`: table back end, ``seed_policy="random"``, Recall@20,
    the tabulation budget); the class's own defaults below are those of a plain constructor.

    * ``dataset``: a shipped task (``nasenv.data.DATASETS``) or a local one imported into the
      data home (:mod:`nasenv.userdata`; live back end). Default ``"Books-20core"``.
    * ``backend``: ``"table"`` (the shipped benchmark table; core space only), ``"surrogate"``
      (the shipped surrogate model of the task; any space, ``fidelity="tabulation"`` only) or
      ``"live"`` (train for real, cached on disk). Default ``"table"``.
    * ``metric``: ``"recall"`` or ``"ndcg"``. Default ``"recall"``.
    * ``fidelity``: a key of ``nasenv.train.FIDELITIES`` (the table answers budgets up to its
      own, ``"tabulation"``). Default ``"tabulation"``.
    * ``seed_policy``: ``"fixed"`` (always ``eval_seed``), ``"random"`` (one of the seeds drawn
      from ``np_random`` per evaluation) or ``"mean"`` (the mean over the seeds; the cost is that
      of every seed's training). Default ``"fixed"``.
    * ``space``: ``"core"`` or ``"full"`` (or a ``SearchSpace``). Default ``"core"``. On a task
      without item text features (an ID-only import, :mod:`nasenv.importer`), the space's
      ``id_only()``: ``items`` is always ``"id"``. The version 1 spaces ``"core-v1"`` and
      ``"full-v1"`` add a 13th decision after ``items``, the item text ``encoder`` (``frozen``,
      ``finetuned``, ``lora``: :data:`nasenv.space.ENCODERS`; open only with text items),
      restricted to the encoders the task ships (``space.with_encoders``): live back end, or
      the table back end where the task's ``core-v1`` table ships (Books-Canada-5core and
      Books-Europe-5core: ``load_table(task, space="core-v1")``); the surrogate holds
      frozen-encoder trainings only.
    * ``eval_seed``: seed of the ``fixed`` policy. Default 0.
    * ``surrogate_version``: which shipped surrogate answers the ``surrogate`` back end
      (:data:`nasenv.surrogate.SURROGATE_VERSIONS`): 0, the kernel ridge of
      ``RecNAS-Books-Surrogate-v0``, or 1, the ARD kernel ridge and MLP ensemble of
      ``RecNAS-Books-Surrogate-v1``, fitted on five times the trainings, or 2, the same data
      answered by the ARD kernel ridge blended with a ranking MLP (``RecNAS-Books-Surrogate-v2``),
      or 3, that model fitted on a third draw more (``RecNAS-Books-Surrogate-v3``, the best
      held-out order). Default 0.
    * ``table_release``: which release of the shipped tables answers the ``table`` back end
      (:data:`nasenv.table.RELEASES`): 0, the tables of the version 0 ids, or 1, every seed built
      (Books-20core seeds 0-4, Books-USA-20core seeds 0-2; Books-10core's seeds 0-2 are still
      being built, so its release 1 table raises ``FileNotFoundError`` until it ships). With
      the default ``n_seeds`` the ``random`` and ``mean`` policies use every seed of the release.
      Default 0.
    * ``n_seeds``: the seeds ``0 .. n_seeds - 1`` of the ``random`` and ``mean`` policies.
      Default: every seed of the table, 3 for live training.
    * ``invalid_action``: what an integer that is not a valid choice does: ``"penalize"`` (ends
      the episode with ``invalid_reward``), ``"raise"`` (``ValueError``) or ``"wrap"`` (an
      invalid action in ``0..5`` stands for ``valid[action % len(valid)]``, ``valid`` the valid
      actions in slot order; valid actions stand for themselves: every action of ``Discrete(6)``
      builds a valid architecture, so agents without masks learn from rewards alone). Default
      ``"penalize"``.
    * ``invalid_reward``: reward of an invalid action under ``"penalize"``. Default -1.0.
    * ``skip_forced``: take every decision that has a single valid choice automatically, so an
      episode is only the real choices (in the core space 6 of the 12 slots are forced for most
      architectures). The observation still encodes every slot. Default ``False``.
    * ``evaluator``: any ``nasenv.evaluators.Evaluator``, in place of ``dataset``, ``backend``
      and ``fidelity`` (used by tests with tiny data). Giving ``dataset`` or ``fidelity`` with
      it, or a ``backend`` other than the one of a built-in evaluator's class, raises
      ``ValueError``. Default ``None``.
    * ``cache``: SQLite path of the live back end's cache (``None``: no cache). Default: see
      ``nasenv.evaluators.default_cache_path``.
    * ``render_mode``: ``None``, ``"ansi"`` (the decisions as text) or ``"rgb_array"`` (a
      picture of the decision grid, one row per slot: chosen, valid and invalid choices in three
      shades, the current slot marked). Default ``None``.

    ``reset(options=...)`` takes two per-episode options, for searchers that choose the budget
    of each evaluation (multi-fidelity search); each applies to the next episode only and changes
    no default, and without them every answer is as before:

    * ``"fidelity"``: ``(max_epochs, patience)`` (or a name of ``FIDELITIES``) at which the
      episode's architecture is answered, exactly, from the table's stored curves: its early
      stopping replayed on the curve, ``cost_seconds`` the stored cumulative seconds at the
      epoch where that budget stops. Table back end only; ``1 <= max_epochs <=`` the table's
      ``max_epochs`` and ``1 <= patience <=`` its ``patience``, else ``ValueError`` naming the
      value and the range. The terminal info then also holds ``fidelity``.
    * ``"eval_seed"``: the training seed of the episode's evaluation instead of the seed
      policy's draw (nothing is drawn from ``np_random`` then); one of the env's seeds, not under
      the ``mean`` policy. A searcher that resumes an earlier evaluation uses it to keep that
      evaluation's seed.

    Other keys are ignored (they belong to wrappers: a task set's ``task``).

    ## Version History

    * v0, table releases (issue 22): ``table_release=1`` answers from the tables of every seed
      built; the default, 0, answers exactly as before.

    * v1 (``RecNAS-Books-Live-v1``, issue 20): the version 1 space ``core-v1`` with the item
      text ``encoder`` decision (13 steps, observation of 69), ``info["adapt_seconds"]``; the
      table back end on a task with a ``core-v1`` table. Every v0 id answers exactly as before.

    * v0, per-episode fidelity (issue 18): ``reset(options={"fidelity": ..., "eval_seed":
      ...})``; without options every answer and info entry is unchanged.

    * v0, provenance labels (issue 24): ``info["source"]`` (``"table"``, ``"surrogate"`` or
      ``"live"``) at the end of every evaluated architecture; the surrogate back end's test
      metrics are keyed ``predicted_test_recall`` / ``predicted_test_ndcg`` instead of the
      measured keys ``test_recall`` / ``test_ndcg``. Rewards, seeds, costs and every other info
      entry are unchanged on every back end; the table and live back ends only gain the key.
    * v0, protocol alignment (package 0.2.0): ``RecNAS-Books-v0`` is registered with the
      leaderboard's protocol (``seed_policy="random"`` instead of ``"fixed"``), ``max_episode_steps
      =12`` and ``render_fps``; every action ``action_space.contains`` accepts is the action it
      denotes (a 0-d NumPy array used to be scored as invalid); ``render_mode="rgb_array"``; the
      mask of an ended episode is the next episode's first mask instead of all zeros;
      ``info["arch_index"]`` became ``info["full_index"]``; ``skip_forced`` and
      ``invalid_action="wrap"`` added (off by default). Rewards of valid episodes are unchanged
      for a given seed policy.
    * v0: initial version.
    """

    # declared as gymnasium.Env declares it (not ClassVar, which mypy would refuse): read from
    # the class by gymnasium.make, shared by design
    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        dataset: str | None = None,
        backend: str | None = None,
        metric: str = "recall",
        fidelity: str | None = None,
        seed_policy: str = "fixed",
        space: str | SearchSpace = "core",
        eval_seed: int = 0,
        n_seeds: int | None = None,
        invalid_action: str = "penalize",
        invalid_reward: float = -1.0,
        skip_forced: bool = False,
        evaluator: Evaluator | None = None,
        cache: str | None = "default",
        render_mode: str | None = None,
        surrogate_version: int = 0,
        table_release: int = 0,
    ) -> None:
        if backend is not None:
            _check("backend", backend, BACKENDS)
        _check("metric", metric, METRICS)
        if fidelity is not None:
            _check("fidelity", fidelity, sorted(FIDELITIES))
        _check("seed_policy", seed_policy, SEED_POLICIES)
        if not isinstance(space, SearchSpace):
            _check("space", space, sorted(SPACES))
            space = SPACES[space]
        _check("invalid_action", invalid_action, INVALID_ACTIONS)
        _check("render_mode", render_mode, [None, *self.metadata["render_modes"]])
        _check("surrogate_version", surrogate_version, SURROGATE_VERSIONS)
        if surrogate_version and backend != "surrogate":
            raise ValueError(
                f"surrogate_version={surrogate_version} needs backend='surrogate', not {backend!r}"
            )
        _check("table_release", table_release, sorted(RELEASES))
        if table_release and (backend or "table") != "table":
            raise ValueError(
                f"table_release={table_release} needs backend='table', not {backend!r}"
            )
        if evaluator is None:
            evaluator = _make_evaluator(
                dataset or DEFAULT_DATASET,
                backend or "table",
                fidelity or "tabulation",
                cache,
                space.name if "encoder" in space.slot_index else "core",
                surrogate_version,
                table_release,
            )
        else:
            _check_evaluator(evaluator, dataset, backend, fidelity)
        task = getattr(evaluator, "dataset", None)
        if isinstance(task, BooksDataset) and task.item_text.shape[1] == 0:
            space = space.id_only()  # a task without item texts (an ID-only import)
        elif isinstance(task, BooksDataset) and "encoder" in space.slot_index:
            space = space.with_encoders(_task_encoders(task))  # the encoders the task ships
        adapted = "encoder" in space.slot_index and space.slot_choices("encoder") != [FROZEN]
        if adapted and isinstance(evaluator, SurrogateEvaluator):
            raise ValueError(
                f"the surrogate was fitted on frozen-encoder trainings only; it cannot answer "
                f"the {space.name} space's adapted encoders (use backend='live')"
            )
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
        self.skip_forced = bool(skip_forced)
        self.render_mode = render_mode

        # gymnasium types Discrete as a space of np.int64; the env takes Python ints (and NumPy
        # integers, see as_action), its declared action type
        self.action_space = spaces.Discrete(N_ACTIONS)  # type: ignore[assignment]
        size = space.choice_offsets[-1] + len(space.slots) + 1
        self.observation_space = spaces.Box(0.0, 1.0, (size,), dtype=np.float32)
        self.decisions: list[Choice] = []
        # Per-prefix caches: a space has a few thousand decision prefixes, and table-mode
        # episodes are cheap enough that recomputing masks and encodings would dominate.
        self._masks: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._finished: dict[tuple[Choice, ...], tuple[Architecture, dict[str, Any]]] = {}
        self._obs = np.zeros(size, dtype=np.float32)
        self.done = True
        self._reset_called = False
        self.total_cost_seconds = 0.0
        self.evaluations = 0
        self.last_arch: Architecture | None = None
        self.last_evaluation: Evaluation | None = None
        """The last finished architecture's :class:`~nasenv.evaluators.Evaluation`."""
        self.last_seed: int | None = None
        self._episode: dict[str, Any] = {}  # this episode's reset options (fidelity, eval_seed)
        self._fidelity_evaluators: dict[tuple[int, int], TableEvaluator] = {}
        self._adapt_seconds: dict[str, float] = {}

    def _masks_now(self) -> tuple[np.ndarray, np.ndarray]:
        """(bool, int8) read-only masks over the actions of the current slot; once the episode
        ended, those of the first slot of the next one."""
        prefix: Sequence[Choice] = () if self.done else self.decisions
        key = self.space.mask_key(prefix)
        if key not in self._masks:
            mask = np.zeros(N_ACTIONS, dtype=bool)
            valid = self.space.mask(prefix)
            mask[: len(valid)] = valid
            as_int8 = mask.astype(np.int8)
            mask.setflags(write=False)
            as_int8.setflags(write=False)
            self._masks[key] = (mask, as_int8)
        return self._masks[key]

    def _mask(self) -> np.ndarray:
        return self._masks_now()[0]

    def action_masks(self) -> np.ndarray:
        """Valid actions of the current slot as booleans (once the episode ended: those of the
        next episode's first slot)."""
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
            self._obs[
                self.space.choice_offsets[slot]
                + self.space.slots[slot].choices.index(self.decisions[-1])
            ] = 1.0
        self._obs[self.space.choice_offsets[-1] :] = 0.0
        self._obs[self.space.choice_offsets[-1] + (len(self.space.slots) if self.done else n)] = 1.0

    def _decide(self, choice: Choice) -> None:
        """Record one decision and, with ``skip_forced``, every forced one after it."""
        self.decisions.append(choice)
        self._update_observation()
        self._take_forced()

    def _take_forced(self) -> None:
        """With ``skip_forced``: decide every slot from here on that has a single valid choice."""
        while self.skip_forced and len(self.decisions) < len(self.space.slots):
            valid = self.space.mask(self.decisions)
            if valid.sum() != 1:
                break
            self.decisions.append(
                self.space.slots[len(self.decisions)].choices[int(np.argmax(valid))]
            )
            self._update_observation()

    def _info(self) -> dict[str, Any]:
        return {
            "action_mask": self._masks_now()[1].copy(),
            "slot": None if self.done else self.space.slots[len(self.decisions)].name,
            "total_cost_seconds": self.total_cost_seconds,
            "evaluations": self.evaluations,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._episode = self._episode_options(options or {})
        self.decisions, self.done, self._reset_called = [], False, True
        self._update_observation()
        self._take_forced()
        return self._observation(), self._info()

    def _episode_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The validated per-episode options of :meth:`reset` (see ``## Arguments``); other
        keys are left to wrappers (a task set's ``task``, a vector env's ``reset_mask``)."""
        episode: dict[str, Any] = {}
        if options.get("fidelity") is not None:
            episode["fidelity"] = self.fidelity_budget(options["fidelity"])
        if options.get("eval_seed") is not None:
            seed = options["eval_seed"]
            if self.seed_policy == "mean":
                raise ValueError("eval_seed cannot be given under the 'mean' seed policy")
            allowed = (
                self.seeds
                if self.seed_policy == "random"
                else getattr(self.evaluator, "seeds", None)
            )
            if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
                raise ValueError(f"eval_seed must be an integer, got {seed!r}")
            if allowed is not None and int(seed) not in allowed:
                raise ValueError(f"eval_seed {seed!r} is not allowed; allowed: {list(allowed)}")
            episode["eval_seed"] = int(seed)
        return episode

    def fidelity_budget(self, fidelity: object) -> tuple[int, int]:
        """``(max_epochs, patience)`` of ``fidelity`` (a ``(max_epochs, patience)`` pair or a
        name of ``nasenv.results.FIDELITIES``), checked against what the table back end can
        answer exactly from its stored curves.

        Raises:
            ValueError: another back end, or a budget outside ``1..max_epochs`` /
                ``1..patience`` of the table (the message names the value and the range).
        """
        table = getattr(self.evaluator, "table", None)
        if not isinstance(self.evaluator, TableEvaluator) or table is None:
            raise ValueError(
                f"a per-evaluation fidelity needs the table back end (answered from its stored "
                f"curves); this env evaluates with {type(self.evaluator).__name__}"
            )
        if isinstance(fidelity, str):
            _check("fidelity", fidelity, sorted(FIDELITIES))
            config = FIDELITIES[fidelity]
            fidelity = (config.max_epochs, config.patience)
        if (
            not isinstance(fidelity, (tuple, list))
            or len(fidelity) != 2
            or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in fidelity
            )
        ):
            raise ValueError(
                f"fidelity must be (max_epochs, patience), two integers, or a name of "
                f"{sorted(FIDELITIES)}; got {fidelity!r}"
            )
        max_epochs, patience = (int(v) for v in fidelity)
        if not (1 <= max_epochs <= table.max_epochs and 1 <= patience <= table.patience):
            raise ValueError(
                f"fidelity (max_epochs={max_epochs}, patience={patience}) is outside what the "
                f"{table.dataset} table answers: max_epochs in 1..{table.max_epochs}, patience "
                f"in 1..{table.patience}"
            )
        return max_epochs, patience

    def _episode_evaluator(self) -> Evaluator:
        """The evaluator of this episode: the env's, or the table's at the episode's fidelity."""
        fidelity = self._episode.get("fidelity")
        if fidelity is None:
            return self.evaluator
        if fidelity not in self._fidelity_evaluators:
            table = cast(TableEvaluator, self.evaluator).table
            self._fidelity_evaluators[fidelity] = TableEvaluator(table, fidelity)
        return self._fidelity_evaluators[fidelity]

    def _resolve(self, action: object) -> tuple[int | None, str]:
        """The choice index ``action`` stands for under ``invalid_action`` (``None``: invalid),
        and the reason when it is invalid."""
        index = as_action(action)
        mask = self._mask()
        if 0 <= index < N_ACTIONS and mask[index]:
            return index, ""
        if self.invalid_action == "wrap" and 0 <= index < N_ACTIONS:
            valid = np.flatnonzero(mask)
            return int(valid[index % len(valid)]), ""
        slot = self.space.slots[len(self.decisions)]
        allowed = [int(i) for i in np.flatnonzero(mask)]
        return None, (
            f"action {action!r} is invalid for slot {slot.name!r} after {self.decisions}; "
            f"valid actions: {allowed} (= {[slot.choices[i] for i in allowed]})"
        )

    def completes(self, action: object) -> bool:
        """Whether stepping ``action`` now would complete the architecture and evaluate it (for
        budget-keeping wrappers that must refuse an evaluation before it starts)."""
        if self.done:
            return False
        index, _ = self._resolve(action)
        if index is None:
            return False
        prefix = [*self.decisions, self.space.slots[len(self.decisions)].choices[index]]
        while self.skip_forced and len(prefix) < len(self.space.slots):
            valid = self.space.mask(prefix)
            if valid.sum() != 1:
                break
            prefix.append(self.space.slots[len(prefix)].choices[int(np.argmax(valid))])
        return len(prefix) == len(self.space.slots)

    def step(self, action: int) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if not self._reset_called:
            raise RuntimeError("step() called before reset(); call env.reset() first")
        if self.done:
            raise RuntimeError("step() called after the episode ended; call env.reset() first")
        index, reason = self._resolve(action)
        if index is None:
            if self.invalid_action == "raise":
                raise ValueError(reason)
            self.done = True
            self._update_observation()
            info = {**self._info(), "invalid_action": True, "reason": reason}
            return self._observation(), self.invalid_reward, True, False, info
        wrapped = index != as_action(action)
        self._decide(self.space.slots[len(self.decisions)].choices[index])
        if len(self.decisions) < len(self.space.slots):
            info = self._info()
            if wrapped:
                info["wrapped_action"] = index
            return self._observation(), 0.0, False, False, info
        obs, reward, terminated, truncated, info = self._finish()
        if wrapped:
            info["wrapped_action"] = index
        return obs, reward, terminated, truncated, info

    def _evaluate(self, arch: Architecture) -> Evaluation:
        """One evaluation under the seed policy (``mean``: averaged scores, summed cost), at the
        episode's fidelity and seed where :meth:`reset` was given them."""
        evaluator = self._episode_evaluator()
        if "eval_seed" in self._episode:
            return evaluator.evaluate(arch, self._episode["eval_seed"])
        if self.seed_policy == "fixed":
            return evaluator.evaluate(arch, self.eval_seed)
        if self.seed_policy == "random":
            return evaluator.evaluate(arch, int(self.np_random.integers(self.n_seeds)))
        runs = [evaluator.evaluate(arch, seed) for seed in self.seeds]
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
            source=runs[0].source,
            cost_version=runs[0].cost_version,
            inference_ms=float(np.mean([run.inference_ms for run in runs])),
        )

    def _identity(self) -> tuple[Architecture, dict[str, Any]]:
        """The finished architecture and its identifying info entries (cached per architecture)."""
        key = tuple(self.decisions)
        if key not in self._finished:
            arch = Architecture.from_decisions(self.decisions, self.space.slots)
            names = {
                "arch": arch.to_string(),
                "full_index": self.space.full.index(arch),
                "hash": arch.hash,
            }
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
        self.last_evaluation = evaluation
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
            "source": evaluation.source,
            "cost_version": evaluation.cost_version,
        }
        if "encoder" in self.space.slot_index:
            info["adapt_seconds"] = self.adapt_seconds(arch.encoder)
        if "fidelity" in self._episode:
            info["fidelity"] = self._episode["fidelity"]
        return self._observation(), float(reward), True, False, info

    def adapt_seconds(self, encoder: str) -> float:
        """The one-off cost of ``encoder``'s item features on this env's task: the measured
        seconds of its adaptation on 2 cores (``nasenv/datasets/ADAPTED.json``; 0 for
        ``frozen``). Paid once per task, whatever the number of architectures trained on those
        features, so it is reported beside ``cost_seconds`` (``info["adapt_seconds"]`` in the
        version 1 spaces), never inside it. 0 also on a task that is not registered (an
        evaluator or dataset built in code: nothing was adapted for it)."""
        if encoder not in self._adapt_seconds:
            name = getattr(self.evaluator, "dataset_name", None)
            try:
                seconds = adapt_seconds(name, encoder) if isinstance(name, str) else 0.0
            except ValueError:  # not a registered task
                seconds = 0.0
            self._adapt_seconds[encoder] = seconds
        return self._adapt_seconds[encoder]

    def test_metrics(
        self,
        arch: Architecture | str | None = None,
        seed: int | Sequence[int] | None = None,
    ) -> dict[str, float]:
        """Test Recall@20 and NDCG@20 of a finished architecture (default: the last one), for
        ``seed`` (one seed, or the mean over several) or, by default, the seed of its evaluation
        (the mean over the env's seeds under ``mean``).

        Never used for rewards; meant for reporting the architecture a search selected. Keys:
        ``test_recall`` and ``test_ndcg``, measured (table, live back end), or
        ``predicted_test_recall`` and ``predicted_test_ndcg`` on the surrogate back end, whose
        numbers are predictions (its ``seed`` changes nothing: they are seed means).
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

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "ansi":
            names = [
                f"{s.name}={v}" for s, v in zip(self.space.slots, self.decisions, strict=False)
            ]
            return " ".join(names) or "(no decision yet)"
        if self.render_mode == "rgb_array":
            return self._picture()
        return None

    def _picture(self) -> np.ndarray:
        """The decision grid as an RGB image: a row per slot, a column per action."""
        grid = np.full((len(self.space.slots), N_ACTIONS, 3), 235, dtype=np.uint8)  # not a choice
        for slot, spec in enumerate(self.space.slots):
            if slot < len(self.decisions):
                grid[slot, spec.choices.index(self.decisions[slot])] = (33, 102, 172)
            elif slot == len(self.decisions) and not self.done:
                valid = self.space.mask(self.decisions)
                grid[slot, : len(valid)][valid] = (146, 197, 222)
            grid[slot, len(spec.choices) :] = (255, 255, 255)
        if not self.done and len(self.decisions) < len(self.space.slots):
            grid[len(self.decisions), :, 0] = np.maximum(grid[len(self.decisions), :, 0], 200)
        return np.kron(grid, np.ones((CELL, CELL, 1), dtype=np.uint8))


def _task_encoders(task: BooksDataset) -> list[str]:
    """The text encoders whose item features ``task`` has: those shipped or made for a
    registered task (:func:`nasenv.data.adapted_encoders`), ``frozen`` alone for one built in
    code."""
    try:
        return adapted_encoders(task.name)
    except ValueError:  # not a registered task: a dataset built in code
        return [FROZEN]


def _make_evaluator(
    dataset: str,
    backend: str,
    fidelity: str,
    cache: str | None,
    table_space: str = "core",
    surrogate_version: int = 0,
    table_release: int = 0,
) -> Evaluator:
    """The evaluator of a named back end (the table of ``table_space``, the core one or that of
    a version 1 space, in ``table_release``; the surrogate of ``surrogate_version``)."""
    if backend == "table":
        table = load_table(dataset, space=table_space, release=table_release)
        return TableEvaluator(table, fidelity)
    if backend == "surrogate":
        if fidelity != "tabulation":
            raise ValueError(
                f"the surrogate predicts the 'tabulation' budget only, not {fidelity!r}"
            )
        return SurrogateEvaluator(load_surrogate(dataset, version=surrogate_version), dataset)
    return LiveEvaluator(dataset, fidelity, cache)


EVALUATOR_BACKENDS: dict[type, str] = {
    TableEvaluator: "table",
    SurrogateEvaluator: "surrogate",
    LiveEvaluator: "live",
}


def _check_evaluator(
    evaluator: Evaluator, dataset: str | None, backend: str | None, fidelity: str | None
) -> None:
    """Refuse arguments that an explicit evaluator would silently override."""
    given = {"dataset": dataset, "fidelity": fidelity}
    clashes = [f"{name}={value!r}" for name, value in given.items() if value is not None]
    if clashes:
        raise ValueError(
            f"{', '.join(clashes)} conflicts with evaluator={evaluator!r}, which fixes its own "
            "dataset and budget; give either the evaluator or those arguments"
        )
    own = EVALUATOR_BACKENDS.get(type(evaluator))
    if backend is not None and own is not None and own != backend:
        raise ValueError(
            f"backend={backend!r} conflicts with evaluator={evaluator!r}, a {own!r} evaluator"
        )
