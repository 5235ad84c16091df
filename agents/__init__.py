"""Search agents and baselines that run against the RecNAS-Books environments.

Every agent is a dataclass of documented hyperparameters with a ``search(runner)`` method (see
:mod:`agents.base`); :func:`make_agent` builds one by name. Agents that need optional packages
(Stable-Baselines3, Optuna) import them only when built; :func:`unavailable` says whether they
can run here and what to install otherwise.

Beside them: the multi-fidelity agents (:data:`agents.multifidelity.MF_AGENTS` and
:class:`agents.smac.SMACHyperband`), scored by simulated seconds; :mod:`agents.parallel`, which
runs the ask-and-tell agents (:class:`agents.base.AskTellAgent`) with ``N`` workers; and the
one-shot searchers of :mod:`agents.oneshot`, which search a dataset through a weight-sharing
supernet instead of an env.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.base import Agent

AGENTS: dict[str, str] = {
    "random": "agents.random_search:RandomSearch",
    "evolution": "agents.evolution:RegularizedEvolution",
    "tpe": "agents.tpe:TPE",
    "qlearning": "agents.qlearning:QLearning",
    "mcts": "agents.mcts:MCTS",
    "reinforce": "agents.reinforce:Reinforce",
    "ppo": "agents.ppo:MaskablePPOAgent",
    "ppo-plain": "agents.ppo:PlainPPOAgent",
    "portfolio": "agents.portfolio:Portfolio",
}
"""Agent name -> ``module:class``."""

TRANSFER_AGENTS: tuple[str, ...] = ("portfolio",)
"""Agents that start from other tasks' tables: measured as transfer (``benchmarks/transfer.py``),
not in the leaderboard of searches from scratch."""


REQUIREMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "tpe": (("optuna",), "rl"),
    "ppo": (("stable_baselines3", "sb3_contrib"), "rl"),
    "ppo-plain": (("stable_baselines3", "sb3_contrib"), "rl"),
}
"""Agents that need optional packages: name -> (the modules they import, the package extra that
installs them)."""


def unavailable(name: str) -> str | None:
    """``None`` if agent ``name`` can run here; otherwise one line saying which optional packages
    cannot be imported and what to install, e.g. ``needs optuna: pip install
    'recnas-books[rl]'``. Imports the packages it checks (as building the agent would)."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; allowed: {list(AGENTS)}")
    modules, extra = REQUIREMENTS.get(name, ((), ""))
    missing = []
    for module in modules:
        state = random.getstate()  # importing Stable-Baselines3 draws from Python's generator
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
        finally:
            random.setstate(state)
    if not missing:
        return None
    return f"needs {' and '.join(missing)}: pip install 'recnas-books[{extra}]'"


def agent_class(name: str) -> type[Agent]:
    """The class registered under ``name``."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; allowed: {list(AGENTS)}")
    from agents.base import Agent  # every agent's module imports it

    module, _, cls = AGENTS[name].partition(":")
    found = getattr(importlib.import_module(module), cls)
    if not (isinstance(found, type) and issubclass(found, Agent)):
        raise TypeError(f"{AGENTS[name]} (agent {name!r}) is not an agents.base.Agent class")
    return found


def make_agent(name: str, seed: int = 0, **hyperparameters: Any) -> Agent:
    """Build the agent ``name`` with ``seed`` and any hyperparameter overrides."""
    build: Callable[..., Agent] = agent_class(name)  # a dataclass: seed= and hyperparameters
    return build(seed=seed, **hyperparameters)
