"""Fidelity as the searcher's choice (issue 18): charged seconds, resumption, errors, and the
multi-fidelity agents on the tests' sample table."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.multifidelity import MF_AGENTS, SuccessiveHalving, rungs, successive_halving
from agents.runner import Budget, SearchRunner, run_search
from nasenv.env import RecNASEnv
from nasenv.evaluators import TableEvaluator
from nasenv.table import BenchmarkTable
from nasenv.testing import TINY_SPACE
from tests.test_agent_defaults import documented, leading_value

TABLE = BenchmarkTable.load(Path(__file__).resolve().parent / "data" / "tiny.npz")  # 8/3


def runner(budget: Budget | None = None, policy: str = "random") -> SearchRunner:
    env = RecNASEnv(evaluator=TableEvaluator(TABLE), space=TINY_SPACE, seed_policy=policy)
    r = SearchRunner(env, budget or Budget(100))
    r.reset(seed=0)
    return r


def test_a_low_fidelity_evaluation_charges_the_stored_seconds_at_its_stopping_epoch():
    r = runner()
    for i in range(10):
        trial = r.evaluate(TINY_SPACE[i], fidelity=(3, 2))
        stored = TABLE.result(trial.arch, trial.seed).at_fidelity(3, 2)
        assert trial.fidelity == (3, 2) and not trial.full and trial.resumed_from is None
        assert trial.cost_seconds == pytest.approx(stored.epoch_seconds[-1])
        assert trial.reward == pytest.approx(TABLE.query(trial.arch, trial.seed, (3, 2)).val_recall)
    assert r.total_seconds == pytest.approx(sum(t.cost_seconds for t in r.history))


def test_a_continuation_keeps_the_seed_and_charges_the_difference():
    r = runner()
    for i in range(10):
        low = r.evaluate(TINY_SPACE[i], fidelity=(2, 1))
        mid = r.evaluate(TINY_SPACE[i], fidelity=(5, 2))
        full = r.evaluate(TINY_SPACE[i])
        assert low.seed == mid.seed == full.seed
        assert (mid.resumed_from, full.resumed_from) == ((2, 1), (5, 2))
        assert full.full and full.fidelity is None
        stored = TABLE.result(low.arch, low.seed)
        assert low.cost_seconds + mid.cost_seconds + full.cost_seconds == pytest.approx(
            stored.cost_seconds
        )
        assert mid.cost_seconds == pytest.approx(
            stored.at_fidelity(5, 2).cost_seconds - stored.at_fidelity(2, 1).cost_seconds
        )
        assert full.reward == pytest.approx(TABLE.query(low.arch, low.seed).val_recall)
    assert len(r.history) == 30  # one evaluation per call


def test_a_repeat_that_does_not_extend_the_budget_is_a_fresh_evaluation():
    r = runner()
    arch = TINY_SPACE[7]
    first = r.evaluate(arch, fidelity=(5, 3))
    again = r.evaluate(arch, fidelity=(6, 2))  # more epochs, less patience: not a resumption
    assert again.resumed_from is None
    assert again.cost_seconds == pytest.approx(TABLE.query(arch, again.seed, (6, 2)).cost_seconds)
    assert first.resumed_from is None


def test_without_a_fidelity_nothing_changes():
    plain, asked = runner(), runner()
    for i in range(5):
        a, b = plain.evaluate(TINY_SPACE[i]), asked.evaluate(TINY_SPACE[i], fidelity=(8, 3))
        assert (a.seed, a.reward, a.cost_seconds, a.fidelity) == (
            b.seed, b.reward, b.cost_seconds, None,
        )  # fmt: skip


@pytest.mark.parametrize("bad", [(9, 3), (8, 4), (0, 3), (3, 0)])
def test_a_fidelity_outside_the_table_names_the_value_and_the_range(bad):
    with pytest.raises(ValueError, match=r"max_epochs in 1\.\.8, patience in 1\.\.3"):
        runner().evaluate(TINY_SPACE[0], fidelity=bad)
    env = RecNASEnv(evaluator=TableEvaluator(TABLE), space=TINY_SPACE)
    with pytest.raises(ValueError, match=f"max_epochs={bad[0]}, patience={bad[1]}"):
        env.reset(options={"fidelity": bad})
    with pytest.raises(ValueError, match="two integers"):
        env.reset(options={"fidelity": (3.5, 2)})


def test_the_reset_option_applies_to_the_next_episode_only():
    env = RecNASEnv(evaluator=TableEvaluator(TABLE), space=TINY_SPACE)
    r = SearchRunner(env, Budget(10))
    r.reset(seed=0, options={"fidelity": (2, 1)})
    arch = TINY_SPACE[3]
    for value in arch.decisions():  # an RL agent steps the env itself
        if env.done:
            break
        _, _, _, _, info = r.step(_action(env, value))
    assert info["fidelity"] == (2, 1) and r.history[-1].fidelity == (2, 1)
    assert r.evaluate(TINY_SPACE[4]).full  # the default budget again


def _action(env: RecNASEnv, value: object) -> int:
    from nasenv.space import SLOTS

    return SLOTS[len(env.decisions)].choices.index(value)


def test_the_incumbent_is_a_full_budget_trial():
    r = runner()
    scores = TABLE.scores("recall", 0, (2, 1))
    best_low = int(scores.argmax())
    r.evaluate(TINY_SPACE[0])
    r.evaluate(TABLE.arch(best_low), fidelity=(2, 1))
    assert r.best().full
    only_low = runner()
    only_low.evaluate(TINY_SPACE[0], fidelity=(2, 1))
    only_low.evaluate(TINY_SPACE[1], fidelity=(4, 1))
    assert only_low.best().fidelity == (4, 1)  # none at full: the largest budget run


def test_rungs_are_hyperbands_grid_below_the_tables_budget():
    assert rungs(runner(), 2, 2) == [(2, 3), (4, 3), (8, 3)]
    assert rungs(runner(), 3, 3) == [(8, 3)]  # log_3(8 / 3) < 1: the full budget only


def test_successive_halving_promotes_the_top_one_in_eta():
    r = runner()
    archs = [TINY_SPACE[i] for i in range(9)]
    bottom, middle, top = successive_halving(r, archs, [(2, 3), (4, 3), (8, 3)], eta=3)
    assert len(bottom) == 9 and len(middle) == 3 and len(top) == 1
    ranked = sorted(bottom, key=lambda t: (-t.reward, t.number))
    assert [t.arch for t in middle] == [t.arch for t in ranked[:3]]
    assert all(t.resumed_from == (2, 3) for t in middle) and top[0].full
    best_middle = sorted(middle, key=lambda t: (-t.reward, t.number))[0]
    assert top[0].arch == best_middle.arch and top[0].seed == best_middle.seed


SMALL = {"min_epochs": 2, "eta": 2}  # rungs 2, 4 and 8 of the sample table's 8 epochs


@pytest.mark.parametrize("name", list(MF_AGENTS))
def test_the_agents_spend_their_budget_and_are_reproducible(name):
    pytest.importorskip("optuna") if name == "optuna-hyperband" else None

    def run(seed: int) -> list[tuple]:
        env = RecNASEnv(evaluator=TableEvaluator(TABLE), space=TINY_SPACE, seed_policy="random")
        result = run_search(
            MF_AGENTS[name](seed=seed, **SMALL), env, Budget(None, seconds=5.0), seed
        )
        assert result.history[-1].total_seconds >= 5.0
        assert result.history[-2].total_seconds < 5.0 and result.best is not None
        assert result.best.full and any(not t.full for t in result.history)
        return [(t.arch, t.seed, t.fidelity, t.cost_seconds) for t in result.history]

    assert run(1) == run(1)
    assert run(1) != run(2)
    counted = run_search(
        MF_AGENTS[name](seed=0, **SMALL),
        RecNASEnv(evaluator=TableEvaluator(TABLE), space=TINY_SPACE),
        Budget(evaluations=20),
    )
    assert len(counted.history) == 20


@pytest.mark.parametrize("name", list(MF_AGENTS))
def test_every_hyperparameter_is_documented_with_its_default(name):
    import dataclasses

    cls = MF_AGENTS[name]
    entries = documented(cls)
    for field in dataclasses.fields(cls):
        if field.name != "seed":
            assert leading_value(entries[field.name]) == field.default, (name, field.name)


def test_the_agents_refuse_a_back_end_without_curves(planted):
    with pytest.raises(ValueError, match="table back end"):
        SuccessiveHalving().search(SearchRunner(RecNASEnv(evaluator=planted), Budget(5)))
