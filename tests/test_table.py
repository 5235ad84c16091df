"""The benchmark table: format, checksums, query API, and its use as the env's back end."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from nasenv.data import ChecksumError, read_checksums
from nasenv.env import RecNASEnv
from nasenv.evaluators import TableEvaluator
from nasenv.results import TrainConfig
from nasenv.space import Architecture
from nasenv.table import BenchmarkTable, UnknownArchitectureError
from nasenv.tablebuild import check_entries
from nasenv.testing import SAMPLE_BUDGET, SAMPLE_SEEDS, TINY_SPACE
from nasenv.train import train_architecture
from tests.fakes import DAMAGES, damage_file

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def table() -> BenchmarkTable:
    return BenchmarkTable.load(DATA / "tiny.npz", read_checksums(DATA)["tiny.npz"])


def test_sample_table_covers_its_space(table):
    assert len(table) == len(TINY_SPACE) == 58
    assert table.seeds == SAMPLE_SEEDS
    assert table.arch_strings == tuple(a.to_string() for a in TINY_SPACE)
    assert (table.max_epochs, table.patience) == SAMPLE_BUDGET
    assert table.scores().std() > 0.01  # architectures differ


@pytest.mark.parametrize("damage", DAMAGES)
def test_tampered_table_is_refused_with_file_and_expected_hash(tmp_path, damage):
    path = tmp_path / "tiny.npz"
    shutil.copy(DATA / "tiny.npz", path)
    damage_file(path, damage)
    expected = read_checksums(DATA)["tiny.npz"]
    with pytest.raises(ChecksumError, match=expected) as error:
        BenchmarkTable.load(path, expected)
    assert str(path) in str(error.value)


def test_an_architecture_is_found_by_index_string_object_and_hash(table):
    arch = TINY_SPACE[17]
    i = table.index(arch)
    assert table.index(arch.to_string()) == table.index(17) == i == 17
    assert table.query(arch) == table.query(arch.to_string()) == table.query(i)
    assert table.by_hash(arch.hash) == arch == table.arch(i)
    assert table.hash(i) == arch.hash


def test_unknown_architectures_and_seeds_raise_clear_errors(table):
    outside = dataclasses.replace(TINY_SPACE[3], items="text")  # the tiny space has id only
    with pytest.raises(UnknownArchitectureError, match="not in the tiny table"):
        table.query(outside)
    with pytest.raises(UnknownArchitectureError, match="outside"):
        table.query(len(table))
    with pytest.raises(UnknownArchitectureError, match="hash"):
        table.by_hash("0" * 16)
    with pytest.raises(ValueError, match="'nope' is not one of"):
        table.query("layers=nope,combine=last,dim=16,items=id,loss=bpr,lr=0.02,reg=0.0001")
    with pytest.raises(ValueError, match=r"allowed: \[0, 1, 2, 'mean'\]"):
        table.query(0, seed=7)
    with pytest.raises(ValueError, match="not answerable"):
        table.query(0, fidelity="converged")


def test_stored_budget_answers_agree_with_the_raw_arrays(table):
    # computed here from the file's arrays, not through the query code: the best validation
    # epoch of a stored curve, its cost at the last stored epoch, failed seeds counting 0
    ok, n_epochs = table.arrays["ok"], table.arrays["n_epochs"].astype(int)
    assert ok.all()  # the sample table has no failure; one is planted below
    best_epoch = np.nanargmax(table.arrays["val_recall"], axis=2)
    ndcg = np.take_along_axis(table.arrays["val_ndcg"], best_epoch[..., None], 2)[..., 0]
    np.testing.assert_allclose(table.scores("ndcg", "mean"), ndcg.mean(1), rtol=1e-6)
    np.testing.assert_allclose(table.scores("ndcg", 2), ndcg[:, 2], rtol=1e-6)
    last = np.take_along_axis(table.arrays["epoch_seconds"], n_epochs[..., None] - 1, 2)[..., 0]
    np.testing.assert_allclose(table.costs(), last.mean(1), rtol=1e-6)
    assert table.query(5).epochs == pytest.approx(n_epochs[5].mean())

    arrays = dict(table.arrays)
    arrays["ok"] = ok.copy()
    arrays["ok"][5, 1] = False
    failed = BenchmarkTable(arrays)
    assert failed.scores("ndcg")[5] == pytest.approx((ndcg[5, 0] + 0.0 + ndcg[5, 2]) / 3)
    assert failed.query(5).status == "failed" and failed.query(5, 0).status == "ok"
    assert failed.costs()[5] == pytest.approx(last[5].mean())  # a failed seed still costs


def test_lower_fidelities_replay_early_stopping_on_the_stored_curves(table):
    for i in (0, 9, 30):
        for seed in table.seeds:
            short = table.result(i, seed).at_fidelity(4, 2)
            record = table.query(i, seed, fidelity=(4, 2))
            assert record.val_recall == pytest.approx(short.val_recall_best)
            assert record.epochs == len(short.val_recall)
            assert record.cost_seconds == pytest.approx(short.epoch_seconds[-1])
            assert table.test_metrics(i, seed, (4, 2))["test_recall"] == pytest.approx(
                short.test_recall
            )


def test_top_k_is_sorted_and_agrees_with_scores(table):
    top = table.top_k(5, "recall", seed=1)
    scores = [score for _, score in top]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == table.scores("recall", 1).max()
    assert table.index(top[0][0]) == int(np.argmax(table.scores("recall", 1)))
    text = table.top_k(3, "recall", seed=1, where=lambda arch: arch.items != "id")
    ranked = [pair for pair in table.top_k(len(table), "recall", seed=1) if pair[0].items != "id"]
    assert text == ranked[:3] and all(arch.items != "id" for arch, _ in text)


def test_test_metrics_never_enter_scores_or_rankings(table):
    arrays = dict(table.arrays)
    for name in ("test_recall_at_best", "test_ndcg_at_best"):
        arrays[name] = np.random.default_rng(0).random(arrays[name].shape).astype(np.float32)
    scrambled = BenchmarkTable(arrays)
    np.testing.assert_array_equal(scrambled.scores("recall"), table.scores("recall"))
    np.testing.assert_array_equal(scrambled.scores("ndcg", 2), table.scores("ndcg", 2))
    assert scrambled.top_k(10) == table.top_k(10)
    assert scrambled.test_metrics(3) != table.test_metrics(3)


def test_save_and_load_round_trip_bytes(table, tmp_path):
    table.save(tmp_path / "copy.npz")
    assert (tmp_path / "copy.npz").read_bytes() == (DATA / "tiny.npz").read_bytes()


def test_a_missing_training_is_never_filled_in(table):
    results = [table.result(i, s) for s in table.seeds for i in range(len(table))][:-1]
    with pytest.raises(ValueError, match=r"1 .* missing"):
        BenchmarkTable.from_results(results, table.arch_strings, list(table.seeds), table.meta)


def test_stored_trainings_reproduce_when_retrained(table, tiny_context):
    checks = list(check_entries(table, tiny_context, [(0, 0), (40, 2)]))
    for check in checks:
        assert abs(check.difference) <= 1e-6 and check.within_seed_spread
    stored = table.result(40, 2)
    again = train_architecture(table.arch(40), tiny_context, 2, TrainConfig(*SAMPLE_BUDGET, 64))
    np.testing.assert_allclose(again.test_ndcg_at_best, stored.test_ndcg_at_best, atol=1e-6)


def _table_env(table: BenchmarkTable, **kwargs) -> RecNASEnv:
    return RecNASEnv(evaluator=TableEvaluator(table), space=TINY_SPACE, **kwargs)


def _play(env: RecNASEnv, arch: Architecture, seed: int | None = None) -> tuple[float, dict]:
    from nasenv.space import SLOTS

    env.reset(seed=seed)
    for slot, value in zip(SLOTS, arch.decisions(), strict=True):
        _, reward, terminated, _, info = env.step(slot.choices.index(value))
    assert terminated
    return float(reward), info


def test_table_env_rewards_are_the_stored_scores(table):
    env = _table_env(table, eval_seed=1, metric="ndcg")
    arch = TINY_SPACE[21]
    reward, info = _play(env, arch)
    assert reward == pytest.approx(table.scores("ndcg", 1)[21])
    assert info["cost_seconds"] == pytest.approx(table.query(arch, 1).cost_seconds)
    assert env.test_metrics() == pytest.approx(table.test_metrics(arch, 1))
    _play(env, arch)
    assert env.total_cost_seconds == pytest.approx(2 * info["cost_seconds"])


def test_mean_policy_averages_scores_and_charges_every_seed(table):
    env = _table_env(table, seed_policy="mean")
    reward, info = _play(env, TINY_SPACE[33])
    assert info["seed"] is None
    assert reward == pytest.approx(table.scores("recall", "mean")[33])
    costs = sum(table.query(33, s).cost_seconds for s in table.seeds)
    assert info["cost_seconds"] == pytest.approx(costs)


def test_random_policy_draws_seeds_from_np_random_reproducibly(table):
    def rewards(seed: int) -> list[float]:
        env = _table_env(table, seed_policy="random")
        env.reset(seed=seed)
        return [_play(env, TINY_SPACE[i])[0] for i in range(0, 58, 4)]

    assert rewards(3) == rewards(3)
    seeds_seen = set()
    env = _table_env(table, seed_policy="random")
    env.reset(seed=0)
    for _ in range(30):
        seeds_seen.add(_play(env, TINY_SPACE[2])[1]["seed"])
    assert seeds_seen == set(table.seeds)


def test_table_env_refuses_mismatched_spaces_seeds_and_budgets(table):
    with pytest.raises(ValueError, match="holds the 'tiny' space"):
        RecNASEnv(evaluator=TableEvaluator(table), space="core")
    with pytest.raises(ValueError, match="not all in the table"):
        _table_env(table, seed_policy="random", n_seeds=5)
    with pytest.raises(ValueError, match="not answerable"):
        TableEvaluator(table, fidelity="converged")


def test_shipped_table_covers_the_core_space_and_drives_the_registered_env():
    import gymnasium as gym

    from nasenv.data import DEFAULT_DATASET, load_dataset
    from nasenv.space import CORE
    from nasenv.table import load_table

    shipped = load_table()  # verified against nasenv/tables/SHA256SUMS
    assert shipped.dataset == DEFAULT_DATASET and shipped.space_name == "core"
    assert shipped.arch_strings == tuple(a.to_string() for a in CORE)
    assert 0 in shipped.seeds
    assert shipped.meta["dataset_sha256"] == load_dataset(DEFAULT_DATASET).sha256
    assert (shipped.max_epochs, shipped.patience) == (30, 5)
    scores = shipped.scores()
    assert np.all((scores >= 0) & (scores < 1)) and scores.std() > 0

    env = gym.make("RecNAS-Books-v0")
    _, info = env.reset(seed=0)
    while True:
        action = int(np.flatnonzero(info["action_mask"])[-1])
        _, reward, terminated, _, info = env.step(action)
        if terminated:
            break
    assert info["seed"] in shipped.seeds  # the registered seed policy's training seed
    assert reward == pytest.approx(shipped.query(info["arch"], info["seed"]).val_recall)


def test_tables_are_read_only_and_a_write_cannot_reach_later_envs(table):
    from nasenv.table import load_table

    shipped = load_table()
    assert load_table() is shipped  # cached: shared by every env of the process
    for name, array in {**shipped.arrays, **table.arrays}.items():
        assert not array.flags.writeable, name
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        shipped.arrays["val_recall"][0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        shipped.arrays["ok"][:] = False
    with pytest.raises(TypeError):
        shipped.arrays["ok"] = np.zeros_like(shipped.arrays["ok"])  # type: ignore[index]
    with pytest.raises(ValueError, match="read-only"):
        shipped.epochs()[0, 0] = 0
    scores = shipped.scores()
    scores[:] = -1.0  # a fresh array: the caller's to change
    assert (load_table().scores() >= 0).all()


def test_a_table_made_in_memory_leaves_the_callers_arrays_writable(table):
    arrays = {name: np.array(array) for name, array in table.arrays.items()}
    copy = BenchmarkTable(arrays)
    assert all(array.flags.writeable for array in arrays.values())
    assert not any(array.flags.writeable for array in copy.arrays.values())
    np.testing.assert_array_equal(copy.scores(), table.scores())


def test_shipped_tables_can_be_limited_to_some_tasks():
    from nasenv.data import TRAINING_TASKS
    from nasenv.table import shipped_tables

    tables = shipped_tables(exclude=TRAINING_TASKS[0], tasks=TRAINING_TASKS)
    assert list(tables) == list(TRAINING_TASKS[1:])
    with pytest.raises(ValueError, match="unknown dataset 'Books-Mars'"):
        shipped_tables(tasks=("Books-Mars",))
