"""One cost definition (``nasenv.results.COST_VERSION``): test passes are never charged, and
seconds of different definitions are converted exactly or refused, never mixed."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from nasenv.env import RecNASEnv
from nasenv.results import COST_VERSION, TrainConfig, TrainResult
from nasenv.space import CORE, Architecture
from nasenv.surrogate import SECONDS, Surrogate
from nasenv.table import BenchmarkTable
from nasenv.tablebuild import BuildPlan, ShardStore
from nasenv.train import train_architecture
from tests.fakes import fake_result

TINY = Path(__file__).resolve().parent / "data" / "tiny.npz"
MF = "layers=none,combine=last,dim=16,items=id,loss=bpr,lr=0.05,reg=0"
PAUSE = 0.05  # seconds every test pass is slowed by


def result(arch: str, seed: int, tests: tuple[float, ...] | None = (0.5, 0.5, 1.5)) -> TrainResult:
    """A three-epoch run of cost version 2 that improved in epochs 1 and 3."""
    return fake_result(
        arch,
        seed,
        val_recall=(0.1, 0.05, 0.2),
        val_ndcg=(0.05, 0.02, 0.1),
        test_recall_at_best=(0.1, 0.1, 0.2),
        test_ndcg_at_best=(0.05, 0.05, 0.1),
        epoch_seconds=(1.0, 2.0, 3.0),
        epoch_test_seconds=tests or (),
    )


def test_the_trainer_never_charges_its_test_passes(tiny_context, monkeypatch):
    real = tiny_context.test_eval

    def slow_test_pass(*tensors):
        time.sleep(PAUSE)
        return real(*tensors)

    monkeypatch.setattr(tiny_context, "test_eval", slow_test_pass)
    config = TrainConfig(max_epochs=8, patience=8, batch_size=32)
    start = time.perf_counter()
    run = train_architecture(Architecture.from_string(MF), tiny_context, 0, config)
    wall = time.perf_counter() - start
    assert run.cost_version == COST_VERSION == 2
    assert len(run.epoch_test_seconds) == len(run.val_recall) == 8
    assert run.test_seconds >= PAUSE  # the first epoch always improves, so it always passes
    # charged and uncharged seconds are disjoint parts of the run's wall time
    assert run.epoch_seconds[-1] + run.test_seconds <= wall
    old = run.with_cost_version(1)
    assert old.epoch_seconds[-1] - run.epoch_seconds[-1] == pytest.approx(
        run.epoch_test_seconds[-2]
    )
    assert old.with_cost_version(2).epoch_seconds == pytest.approx(run.epoch_seconds)
    assert TrainResult.from_dict(run.to_dict()) == run


def test_versions_convert_exactly_or_refuse():
    run = result("a", 0)
    assert run.with_cost_version(1).epoch_seconds == (1.0, 2.5, 3.5)  # epoch e pays e-1's pass
    assert run.with_cost_version(2) is run
    legacy = dataclasses.replace(run, epoch_test_seconds=(), cost_version=1)
    with pytest.raises(ValueError, match="did not record its test passes"):
        legacy.with_cost_version(2)
    with pytest.raises(ValueError, match=r"allowed: \[1, 2\]"):
        run.with_cost_version(3)
    # records written before cost versions existed are version 1
    old_record = {k: v for k, v in run.to_dict().items() if k not in ("cost_version",)}
    assert TrainResult.from_dict(old_record).cost_version == 1
    short = run.at_fidelity(2, 1)
    assert short.epoch_test_seconds == (0.5, 0.5) and np.isnan(short.train_seconds)


def test_a_table_holds_one_cost_version_and_says_which(tmp_path):
    archs = [CORE[0].to_string()]
    meta = {
        "dataset": "Books-20core",
        "fidelity": {"max_epochs": 30, "patience": 5, "batch_size": 64},
    }
    runs = [result(archs[0], 0), result(archs[0], 1)]
    table = BenchmarkTable.from_results(runs, archs, [0, 1], meta)
    table.save(tmp_path / "t.npz")
    loaded = BenchmarkTable.load(tmp_path / "t.npz")
    assert loaded.cost_version == 2 and int(loaded.arrays["format_version"]) == 2
    assert loaded.costs()[0] == pytest.approx(3.0) and loaded.result(0, 0).cost_version == 2
    legacy = [r.with_cost_version(1) for r in runs]
    old = BenchmarkTable.from_results(legacy, archs, [0, 1], meta)
    assert old.cost_version == 1 and "cost_version" not in old.arrays  # format 1, as shipped
    assert old.costs()[0] == pytest.approx(3.5)
    with pytest.raises(ValueError, match=r"different cost versions: 1 .*, 2 "):
        BenchmarkTable.from_results([legacy[0], runs[1]], archs, [0, 1], meta)
    assert BenchmarkTable.load(TINY).cost_version == 1


def test_a_build_keeps_the_cost_version_it_was_begun_under(tmp_path):
    plan = BuildPlan(seeds=(0,), shard_size=2, space="core")
    old = tmp_path / "old"
    old.mkdir()
    stored = {k: v for k, v in plan.to_dict().items() if k != "cost_version"}
    (old / "plan.json").write_text(json.dumps(stored))  # a plan from before cost versions
    store = ShardStore.resume(old, plan)
    assert store.plan.cost_version == 1
    arch = plan.tasks()[0][0]
    store.record(result(arch, 0))
    (record,) = store.done().values()
    assert record["cost_version"] == 1 and record["epoch_seconds"] == [1.0, 2.5, 3.5]
    with pytest.raises(ValueError, match="did not record its test passes"):
        store.record(dataclasses.replace(result(plan.tasks()[1][0], 0), epoch_test_seconds=()))
    new = ShardStore.resume(tmp_path / "new", plan)
    assert json.loads((tmp_path / "new" / "plan.json").read_text())["cost_version"] == 2
    new.record(result(arch, 0))
    assert next(iter(new.done().values()))["epoch_seconds"] == [1.0, 2.0, 3.0]


def test_the_surrogate_names_its_seconds_and_their_version():
    archs = [CORE[i] for i in range(12)]
    seconds = np.linspace(10, 40, 12)
    targets = {"val_recall": np.linspace(0, 0.1, 12), "log_seconds": np.log(seconds)}
    model, _ = Surrogate.fit(archs, targets, 0.0, meta={"cost_version": 2})
    np.testing.assert_allclose(
        model.predict(archs, SECONDS), np.exp(model.predict(archs, "log_seconds"))
    )
    drawn = model.sample(archs[0], 0, ("val_recall", SECONDS, "log_seconds"))
    assert drawn[SECONDS] == pytest.approx(np.exp(drawn["log_seconds"]))
    assert model.cost_version == 2
    with pytest.raises(ValueError, match=r"allowed: .*'seconds'"):
        model.predict(archs, "seconds_")


def test_every_back_end_reports_its_cost_version(planted):
    backends = [(gym.make("RecNAS-Books-v0"), 1), (gym.make("RecNAS-Books-Surrogate-v0"), 1)]
    backends.append((RecNASEnv(evaluator=planted), COST_VERSION))  # as a live trainer's
    for env, version in backends:
        env.reset(seed=0)
        done, info = False, {}
        while not done:
            action = int(np.flatnonzero(env.unwrapped.action_masks())[0])
            _, _, done, _, info = env.step(action)
        assert info["cost_version"] == version, env
