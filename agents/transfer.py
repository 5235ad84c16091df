"""Transfer of a search policy across book tasks: the REINFORCE controller learns on a set of
training tasks, then searches a new task starting from what it learned.

Architecture quality is correlated across related datasets (NAS-Bench-Graph measured this for
node classification), so a controller that has concentrated on good decisions elsewhere may need
fewer evaluations on a new task. Two ways of using it on the new task:

* ``fine_tune=True``: the usual REINFORCE updates continue from the pretrained weights (the
  baseline restarts from the new task's first batch, as reward scales differ between tasks);
* ``fine_tune=False``: the policy is frozen (learning rate 0) and only sampled.

The baseline any learned transfer has to beat is :class:`agents.portfolio.Portfolio`: no policy
at all, only the training tasks' tables read as a ranking. It needs every training task
tabulated; the controller needs only samples.

A transferred controller may also get a smaller ``tanh_constant`` than it was pretrained with
(e.g. ``transferred(weights, tanh_constant=1.0)``): its logits keep their order but are bounded
more tightly, a flatter prior that explores more on a task unlike the training tasks.

    env = TaskSetEnv(TRAINING_TASKS, seed_policy="random")
    weights = pretrain(env, evaluations=2000, seed=0)
    result = run_search(transferred(weights, seed=0), gym.make("RecNAS-Books-v0",
                        dataset="Books-Canada-5core"), Budget(100))

Pretraining episodes come from the training tasks only; nothing of the new task is seen before its
own search, whose every evaluation counts in its budget.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from agents.reinforce import Reinforce
from agents.runner import Budget, run_search


def pretrain(
    env: gym.Env, evaluations: int, seed: int = 0, **hyperparameters: Any
) -> dict[str, torch.Tensor]:
    """Weights of a REINFORCE controller trained for ``evaluations`` architectures on ``env``
    (typically a :class:`~nasenv.tasks.TaskSetEnv` of training tasks)."""
    agent = Reinforce(seed=seed, **hyperparameters)
    run_search(agent, env, Budget(evaluations), seed)
    if agent.weights is None:
        raise RuntimeError("the search ended before the controller was built")
    return agent.weights


def transferred(
    weights: dict[str, torch.Tensor], seed: int = 0, fine_tune: bool = True, **hyperparameters: Any
) -> Reinforce:
    """A REINFORCE agent that starts from ``weights``; frozen unless ``fine_tune``."""
    if not fine_tune:
        hyperparameters["learning_rate"] = 0.0
    return Reinforce(seed=seed, initial_weights=weights, **hyperparameters)
