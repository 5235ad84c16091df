"""Masked PPO with RLlib on RecNAS-Books-v0: a short, single-file example.

RLlib's ``ActionMaskingTorchRLModule`` (shipped in ``ray.rllib.examples``) reads the action mask
from a ``Dict`` observation; ``nasenv.wrappers.RLlibActionMask`` provides it, and
``rllib_env_creator`` registered with ``ray.tune.register_env`` lets every env runner, local or in
another process, build the wrapped env (through the ``nasenv:RecNAS-Books-v0`` id). With masks no
action is ever invalid, so every episode builds an architecture and its return is that
architecture's validation Recall@20 (an invalid action would end an episode at -1; see
``--unmasked``, the baseline without masks).

Needs ``pip install "ray[rllib]"`` (run with Ray 2.60.0, new API stack, torch 2.13.0 CPU)::

    python scripts/rllib_masked_ppo.py --iterations 5
    python scripts/rllib_masked_ppo.py --iterations 5 --num-env-runners 1   # a remote env runner
    python scripts/rllib_masked_ppo.py --iterations 5 --unmasked            # plain PPO baseline

Prints, per training iteration, the mean (min, max) episode return over the iteration's
episodes, then the best architecture the sampled episodes built, and the architecture the trained
policy builds greedily, with its rank in the benchmark table.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import ray
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule, RLModuleSpec
from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule
from ray.tune import register_env

from nasenv.table import load_table
from nasenv.wrappers import ENV_ID, rllib_env_creator

MASKED_ENV = "RecNAS-Books-Masked"
"""The name ``rllib_env_creator`` is registered under for RLlib."""
INVALID = "(invalid action)"
"""What ``on_episode_end`` logs for an episode that ended at an invalid action."""


def _arg(default: Any, text: str) -> Any:
    """A dataclass field with its ``--help`` text."""
    return dataclasses.field(default=default, metadata={"help": text})


@dataclasses.dataclass
class Args:
    """Command-line arguments (``--iterations 5`` sets ``iterations``, and so on)."""

    iterations: int = _arg(10, "PPO training iterations (each samples --batch-size env steps)")
    batch_size: int = _arg(480, "env steps per iteration: 40 episodes of 12 decisions")
    minibatch_size: int = _arg(120, "SGD minibatch size")
    num_epochs: int = _arg(4, "passes over each iteration's batch")
    lr: float = _arg(1e-3, "Adam learning rate")
    entropy_coeff: float = _arg(0.01, "entropy bonus (keeps the search exploring)")
    num_env_runners: int = _arg(0, "remote env-runner processes (0: sample in the driver)")
    seed: int = _arg(0, "seed of RLlib (network initialisation, env seeding)")
    metric: str = _arg("recall", "reward: validation 'recall' or 'ndcg' @20")
    unmasked: bool = _arg(False, "baseline: plain PPO without masks (invalid actions end at -1)")


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for field in dataclasses.fields(Args):
        flag, text = "--" + field.name.replace("_", "-"), field.metadata["help"]
        if field.type == "bool":
            parser.add_argument(flag, action="store_true", help=text)
        else:
            kind = {"int": int, "float": float, "str": str}[str(field.type)]
            text += " (%(default)s)"
            parser.add_argument(flag, type=kind, default=field.default, help=text)
    return Args(**vars(parser.parse_args()))


def on_episode_end(*, episode: Any, metrics_logger: Any, **kwargs: Any) -> None:
    """Log every finished architecture (return, arch) of the env runner's episodes.

    Run as a script, this function travels to remote env runners by value (cloudpickle pickles
    ``__main__``'s functions so); imported as a module, the runners must be able to import it.
    """
    info = episode.get_infos(-1)
    metrics_logger.log_value(
        "architectures",
        (float(episode.get_return()), info.get("arch", INVALID)),
        reduce="item_series",
    )


def make_config(args: Args) -> PPOConfig:
    """PPO on the masked env with RLlib's action-masking module (or the unmasked baseline)."""
    env_config = {"metric": args.metric}
    config = (
        PPOConfig()
        .environment(env=ENV_ID if args.unmasked else MASKED_ENV, env_config=env_config)
        .env_runners(num_env_runners=args.num_env_runners, num_envs_per_env_runner=1)
        .training(
            train_batch_size_per_learner=args.batch_size,
            minibatch_size=args.minibatch_size,
            num_epochs=args.num_epochs,
            lr=args.lr,
            gamma=1.0,  # a single reward at the end of a 12-step episode
            entropy_coeff=args.entropy_coeff,
        )
        .callbacks(on_episode_end=on_episode_end)
        .debugging(seed=args.seed)
    )
    model_config = {"fcnet_hiddens": [64, 64], "head_fcnet_hiddens": [64]}
    if args.unmasked:
        return config.rl_module(model_config=model_config)
    spec = RLModuleSpec(module_class=ActionMaskingTorchRLModule, model_config=model_config)
    return config.rl_module(rl_module_spec=spec)


def greedy_architecture(module: RLModule, args: Args) -> tuple[str | None, float]:
    """Build one architecture with the trained policy's most likely (masked) actions."""
    env: gym.Env = (
        gym.make(ENV_ID, metric=args.metric)
        if args.unmasked
        else rllib_env_creator({"metric": args.metric})
    )
    obs, info = env.reset(seed=args.seed)
    reward: SupportsFloat = 0.0
    done = False
    while not done:
        batch_obs: Any = (
            torch.from_numpy(obs[None])
            if args.unmasked
            else {key: torch.from_numpy(value[None]) for key, value in obs.items()}
        )
        with torch.no_grad():
            logits = module.forward_inference({Columns.OBS: batch_obs})[Columns.ACTION_DIST_INPUTS]
        obs, reward, terminated, truncated, info = env.step(int(logits.argmax(-1)[0]))
        done = terminated or truncated
    return info.get("arch"), float(reward)


def main(args: Args) -> None:
    ray.init(num_cpus=args.num_env_runners + 1, include_dashboard=False)
    register_env(MASKED_ENV, rllib_env_creator)  # stored in the cluster: remote runners see it
    algo = make_config(args).build_algo()
    seen: list[tuple[float, str]] = []
    start = time.perf_counter()
    print(f"ray {ray.__version__}, {'unmasked' if args.unmasked else 'masked'} PPO, {args}")
    for iteration in range(1, args.iterations + 1):
        runners = algo.train()["env_runners"]
        episodes = [tuple(item) for item in runners.get("architectures", [])]
        seen += episodes
        print(
            f"iter {iteration:2d}  episodes {len(episodes):3d}  return mean "
            f"{runners['episode_return_mean']:.4f}  min {runners['episode_return_min']:.4f}  "
            f"max {runners['episode_return_max']:.4f}  "
            f"invalid {sum(arch == INVALID for _, arch in episodes)}  "
            f"({time.perf_counter() - start:.1f} s)"
        )

    table = load_table("Books-20core")
    scores = table.scores(args.metric)  # seed means of the benchmark table

    def describe(arch: str | None, score: float) -> str:
        if arch is None:
            return f"  (an invalid action)  return {score:.4f}"
        rank = int(np.sum(scores > scores[table.index(arch)])) + 1
        return f"  {arch}  return {score:.4f}  seed-mean rank {rank}/{len(table)}"

    if seen:
        best_return, best_arch = max(seen)
        print(f"best sampled ({len(seen)} episodes, {len({a for _, a in seen})} distinct):")
        print(describe(None if best_arch == INVALID else best_arch, best_return))
    module = algo.get_module()
    assert module is not None
    arch, reward = greedy_architecture(module, args)
    print("greedy policy:\n" + describe(arch, reward))
    best, best_score = table.top_k(1, args.metric)[0]
    print(f"table best (seed mean):\n  {best.to_string()}  {best_score:.4f}")
    algo.stop()
    ray.shutdown()


if __name__ == "__main__":
    main(parse_args())
