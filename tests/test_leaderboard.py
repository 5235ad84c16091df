"""Scoring an agent on the leaderboard's protocol, from the package."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from agents.leaderboard import load_agent, main, run_agent, run_one, to_runs
from nasenv.data import sha256_of
from nasenv.env import RecNASEnv
from nasenv.evaluators import TableEvaluator
from nasenv.leaderboard import PROTOCOL, Runs, reference_runs, score
from nasenv.table import BenchmarkTable, load_table
from nasenv.testing import TINY_SPACE


@pytest.fixture(scope="module")
def sample() -> BenchmarkTable:
    return BenchmarkTable.load(Path(__file__).parent / "data" / "tiny.npz")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's, outside the package: a search function and an agent class."""
    (tmp_path / "my_search.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            def first_choices(runner, seed):
                rng = np.random.default_rng(seed)
                while not runner.exhausted:
                    _, info = runner.reset()
                    done = False
                    while not done:
                        action = rng.choice(np.flatnonzero(info["action_mask"]))
                        _, _, done, _, info = runner.step(action)

            class Greedy:
                name = "greedy"

                def __init__(self, seed):
                    self.seed = seed

                def search(self, runner):
                    first_choices(runner, self.seed)

                def hyperparameters(self):
                    return {}

            NOT_AN_AGENT = 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_search"
    sys.modules.pop("my_search", None)


def test_agents_load_by_name_class_or_function(user_module):
    assert load_agent("random")[0] == "random"
    assert load_agent(f"{user_module}:first_choices")[0] == "first_choices"
    name, factory = load_agent(f"{user_module}:Greedy")
    assert name == "greedy" and factory(5).seed == 5
    for bad, message in (
        ("nope", "neither a registered agent"),
        ("no_such_module:f", "cannot load"),
        (f"{user_module}:missing", "cannot load"),
        (f"{user_module}:NOT_AN_AGENT", "not a class or function"),
    ):
        with pytest.raises(ValueError, match=message):
            load_agent(bad)


def test_runs_are_journalled_and_resume_without_rerunning(sample, tmp_path, user_module):
    def make_env():
        return RecNASEnv(evaluator=TableEvaluator(sample), space=TINY_SPACE, seed_policy="random")

    journal = tmp_path / "runs.jsonl"
    name, factory = load_agent(f"{user_module}:first_choices")
    first = run_agent(name, factory, 3, 15, journal, table=sample, make_env=make_env)
    assert [r["seed"] for r in first] == list(PROTOCOL.seeds(3))
    assert all(len(r["history"]) == 15 for r in first)

    def refuse(seed):
        raise AssertionError("a journalled run was run again")

    again = run_agent(name, refuse, 3, 15, journal, table=sample, make_env=make_env)
    assert again == first
    runs = to_runs(name, first, sample)
    row = score(runs, sample)
    assert row.runs == 3 and row.final_regret >= 0
    assert math.isinf(row.median_hit) or 1 <= row.median_hit <= 15


def test_a_run_hitting_the_best_at_once_scores_zero_regret_and_hit_time_one(sample):
    best_row = int(np.argmax(sample.scores("recall", "mean")))
    runs = Runs(
        "oracle",
        np.array([0, 1]),
        np.full((2, 4), best_row),
        np.ones((2, 4)).cumsum(1),
        np.array([1, 1]),
        np.zeros(2),
    )
    row = score(runs, sample)
    assert row.final_regret == 0 and row.median_hit == 1 and row.reached == 1
    with pytest.raises(ValueError, match="one row per run"):
        Runs("bad", np.array([0]), np.zeros((2, 3), int), np.zeros((2, 3)), np.ones(2), np.ones(2))


def test_the_shipped_runs_are_reproduced_by_the_registered_id():
    reference, sha256 = reference_runs()
    table = load_table(PROTOCOL.dataset)
    assert sha256 == sha256_of(Path(table.source))  # they searched the shipped table
    assert set(reference) >= {"random", "qlearning", "evolution", "tpe", "reinforce", "ppo"}
    assert all(r.incumbents.shape == (PROTOCOL.runs, PROTOCOL.budget) for r in reference.values())
    for agent in ("random", "qlearning"):
        seed = int(reference[agent].seeds[1])
        _, factory = load_agent(agent)
        mine = to_runs(agent, [run_one(factory, seed, PROTOCOL.budget)], table)
        np.testing.assert_array_equal(mine.incumbents[0], reference[agent].incumbents[1])
        np.testing.assert_allclose(mine.seconds[0], reference[agent].seconds[1], rtol=1e-6)


def test_the_cli_scores_a_user_agent_beside_the_shipped_ones(tmp_path, user_module, capsys):
    out = tmp_path / "board"
    assert main(["--agent", f"{user_module}:first_choices", "--runs", "2", "--budget", "30",
                 "--out", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "| first_choices | 2 |" in text and "| qlearning (shipped) | 50 |" in text
    assert (out / "leaderboard.md").read_text().strip() in text
    assert (out / "runs.jsonl").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agent", "random", "--runs", "1"], "--runs must be >= 2"),
        (["--agent", "random", "--budget", "0"], "--budget must be in 1..500"),
        (["--agent", "random", "--budget", "501"], "--budget must be in 1..500"),
        (["--agent", "nope"], "neither a registered agent"),
    ],
)
def test_the_cli_refuses_bad_arguments_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
