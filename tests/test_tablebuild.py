"""The resumable table builder: journals, sealing, resume after a crash, plan checks."""

from __future__ import annotations

import json

import pytest

from nasenv.results import FIDELITIES, TrainResult
from nasenv.tablebuild import BuildPlan, PlanMismatchError, ShardStore, assemble


def fake_result(arch: str, seed: int, score: float = 0.05) -> TrainResult:
    return TrainResult(
        arch=arch,
        dataset="Books-20core",
        seed=seed,
        config=FIDELITIES["tabulation"],
        status="ok",
        reason="",
        val_recall=(score / 2, score),
        val_ndcg=(score / 4, score / 2),
        test_recall_at_best=(0.01, 0.02),
        test_ndcg_at_best=(0.005, 0.01),
        epoch_seconds=(1.0, 2.0),
        n_params=100,
        inference_ms=3.0,
    )


PLAN = BuildPlan(seeds=(0, 1), shard_size=100)


def test_plan_is_seed_major_and_sharded():
    tasks = PLAN.tasks()
    assert len(tasks) == 2 * 708
    assert {seed for _, seed in tasks[:708]} == {0}
    assert [len(s) for s in PLAN.shards()] == [100] * 14 + [16]
    with pytest.raises(ValueError, match="allowed"):
        BuildPlan(fidelity="fast")


def test_journal_survives_a_cut_line_and_resume_skips_done_work(tmp_path):
    store = ShardStore(tmp_path, PLAN)
    first = PLAN.tasks()[:5]
    for arch, seed in first:
        store.record(fake_result(arch, seed))
    journal = store.journal_path(0)
    with open(journal, "a") as f:  # a crash in the middle of a write
        f.write('{"arch": "layers=lgc')
    resumed = ShardStore(tmp_path, PLAN)
    assert set(resumed.done()) == set(first)
    assert resumed.pending()[0] == PLAN.tasks()[5]
    assert len(resumed.pending()) == len(PLAN.tasks()) - 5
    arch, seed = PLAN.tasks()[5]
    resumed.record(fake_result(arch, seed))  # appends cleanly after the dropped fragment
    assert len(ShardStore(tmp_path, PLAN).done()) == 6


def test_a_complete_shard_is_sealed_in_plan_order(tmp_path):
    store = ShardStore(tmp_path, PLAN)
    shard = PLAN.shards()[1]
    sealed = [store.record(fake_result(arch, seed)) for arch, seed in reversed(shard)]
    assert sealed == [False] * (len(shard) - 1) + [True]
    assert store.is_sealed(1) and not store.journal_path(1).exists()
    lines = store.sealed_path(1).read_text().splitlines()
    assert [(json.loads(line)["arch"], json.loads(line)["seed"]) for line in lines] == shard
    assert not store.record(fake_result(*shard[0], score=0.9))  # sealed shards never change
    assert ShardStore(tmp_path, PLAN).records(1)[shard[0]]["val_recall"][-1] == 0.05


def test_a_directory_refuses_another_plan(tmp_path):
    ShardStore(tmp_path, PLAN)
    with pytest.raises(PlanMismatchError, match="another plan"):
        ShardStore(tmp_path, BuildPlan(seeds=(0, 1, 2)))


def test_assemble_needs_every_training_of_the_requested_seeds(tmp_path):
    store = ShardStore(tmp_path, PLAN)
    for i, (arch, seed) in enumerate(PLAN.tasks()[:708]):
        store.record(fake_result(arch, seed, score=i / 10_000))
    table = assemble(store, seeds=(0,), machine="test")
    assert len(table) == 708 and table.seeds == (0,)
    assert table.meta["fidelity"]["max_epochs"] == 30 and table.meta["build"]["machine"] == "test"
    assert table.top_k(1)[0][1] == pytest.approx(707 / 10_000)
    with pytest.raises(ValueError, match=r"708 .* missing"):
        assemble(store)
    with pytest.raises(ValueError, match="not in the build plan"):
        assemble(store, seeds=(5,))
