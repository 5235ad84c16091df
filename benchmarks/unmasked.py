"""Agents without action masks: plain PPO and DQN (Stable-Baselines3) against the masked random
agent, with and without the env's help for them.

    python -m benchmarks.unmasked              # 10 runs x 500 evaluations per setting (~20 min)
    python -m benchmarks.unmasked --runs 20    # the runs RESULTS reports
    python -m benchmarks.unmasked --runs 3     # a quick look

Settings of ``gym.make("RecNAS-Books-v0", ...)`` (the leaderboard's protocol otherwise):

* ``penalize``: the default; an invalid action ends the episode with reward -1 and costs no
  evaluation, all 12 slots are decisions;
* ``skip+penalize``: ``skip_forced=True``, the slots with one valid choice are taken by the env;
* ``skip+wrap``: ``skip_forced=True, invalid_action="wrap"``, every action is a valid choice.

Each run spends 500 evaluations or stops after ``--max-steps`` env steps (an agent that keeps
choosing invalid actions never spends its budget); a run that stopped early keeps its last
incumbent for the remaining evaluations and is counted in "budget spent". Scored like the
leaderboard (:mod:`nasenv.leaderboard`); journal, CSV and markdown in ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from agents.base import single_threaded
from agents.leaderboard import load_agent, protocol_table, run_agent, to_runs
from agents.ppo import PlainPPOAgent, StopWhenSpent
from agents.runner import SearchRunner
from benchmarks.common import RESULTS
from nasenv.leaderboard import PROTOCOL, Row, Runs, markdown, score

SETTINGS: dict[str, dict[str, Any]] = {
    "penalize": {},
    "skip+penalize": {"skip_forced": True},
    "skip+wrap": {"skip_forced": True, "invalid_action": "wrap"},
}


@dataclass
class DQNAgent:
    """SB3's DQN (Mnih et al. 2015) on the one-hot observation, sized for a few thousand steps.

    Args:
        learning_rate: 1e-3 (SB3: 1e-4; its default is tuned for millions of steps).
        buffer_size: 10,000 transitions (SB3: 1e6), more than a whole search's steps.
        learning_starts: 500 steps of uniform actions first (SB3: 100).
        exploration_fraction: epsilon decays from 1 to 0.05 over the first 20% of ``max_steps``
            (SB3: 10%, of a far longer run).
        target_update_interval: 250 steps (SB3: 10,000).
        gamma: 0.99 (SB3's default): surviving one more decision is worth something while the
            rules are unknown, as for the plain PPO agent.
    """

    name: ClassVar[str] = "dqn"
    seed: int = 0
    max_steps: int = 60_000
    learning_rate: float = 1e-3
    buffer_size: int = 10_000
    learning_starts: int = 500
    exploration_fraction: float = 0.2
    target_update_interval: int = 250
    gamma: float = 0.99

    def search(self, runner: SearchRunner) -> None:
        from stable_baselines3 import DQN

        with single_threaded():
            model = DQN(
                "MlpPolicy",
                runner,
                learning_rate=self.learning_rate,
                buffer_size=self.buffer_size,
                learning_starts=self.learning_starts,
                exploration_fraction=self.exploration_fraction,
                target_update_interval=self.target_update_interval,
                gamma=self.gamma,
                seed=self.seed,
                device="cpu",
                verbose=0,
            )
            model.learn(self.max_steps, callback=StopWhenSpent(runner, self.max_steps))

    def hyperparameters(self) -> dict[str, Any]:
        return {}


def padded(name: str, records: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """Runs that stopped before the budget, their last incumbent kept to the end."""
    out = []
    for record in records:
        history = list(record["history"])
        history += [history[-1]] * (budget - len(history))
        out.append({**record, "agent": name, "history": history})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.unmasked", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--budget", type=int, default=PROTOCOL.budget)
    parser.add_argument("--max-steps", type=int, default=60_000, help="env steps per run")
    args = parser.parse_args()
    table = protocol_table()
    journal = RESULTS / f"unmasked-{args.budget}.jsonl"
    rows: list[Row | None] = []
    spent: dict[str, float] = {}
    invalid: dict[str, float] = {}
    made: dict[str, float] = {}
    _, random_factory = load_agent("random")
    jobs: list[tuple[str, Any, dict[str, Any]]] = [("random (masked)", random_factory, {})]
    for setting, kwargs in SETTINGS.items():
        jobs.append(
            (
                f"ppo-plain/{setting}",
                lambda seed: PlainPPOAgent(seed=seed, max_env_steps=args.max_steps),
                kwargs,
            )
        )
        jobs.append((f"dqn/{setting}", lambda seed: DQNAgent(seed, args.max_steps), kwargs))
    for name, factory, kwargs in jobs:

        def make_env(kwargs: dict[str, Any] = kwargs) -> gym.Env:
            return gym.make(PROTOCOL.env_id, **kwargs)

        records = run_agent(name, factory, args.runs, args.budget, journal, make_env=make_env)
        spent[name] = float(np.mean([len(r["history"]) == args.budget for r in records]))
        made[name] = float(np.mean([len(r["history"]) for r in records]))
        invalid[name] = float(
            np.mean(
                [
                    r["invalid_episodes"] / (r["invalid_episodes"] + len(r["history"]))
                    for r in records
                ]
            )
        )
        if any(not r["history"] for r in records):
            rows.append(None)
            print(f"{name}: a run evaluated nothing within {args.max_steps} steps")
            continue
        runs: Runs = to_runs(name, padded(name, records, args.budget), table)
        rows.append(score(runs, table))
    text = markdown([r for r in rows if r is not None], table)
    text += (
        f"\n\nRuns that evaluated nothing within {args.max_steps:,} env steps have no regret and "
        "are left out above.\n\n| setting | budget spent (share of runs) | evaluations made "
        "(mean) | invalid episodes (mean share) |\n| --- | --- | --- | --- |\n"
    )
    text += "\n".join(f"| {n} | {spent[n]:.0%} | {made[n]:.0f} | {invalid[n]:.1%} |" for n in spent)
    (RESULTS / f"unmasked-{args.budget}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
