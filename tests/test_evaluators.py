import dataclasses
import multiprocessing
import os
import re
import sqlite3
import time

import pytest

from nasenv.cache import CacheError
from nasenv.evaluators import (
    Evaluation,
    Evaluator,
    LiveEvaluator,
    ResultCache,
    default_cache_path,
)
from nasenv.results import TrainConfig, TrainResult
from nasenv.space import Architecture

ARCH = Architecture.from_string("layers=lgconv,combine=mean,dim=16,items=id,loss=bpr,lr=0.01,reg=0")
FAST = TrainConfig(max_epochs=2, batch_size=64)


def test_live_evaluator_caches_and_separates_test_metrics(tiny_dataset, tmp_path):
    evaluator = LiveEvaluator(tiny_dataset, FAST, cache=tmp_path / "c.sqlite")
    assert isinstance(evaluator, Evaluator)
    first = evaluator.evaluate(ARCH, seed=1)
    assert isinstance(first, Evaluation) and first.status == "ok"
    assert not hasattr(first, "test_recall")
    fresh = LiveEvaluator(tiny_dataset, FAST, cache=tmp_path / "c.sqlite")
    assert fresh.evaluate(ARCH, seed=1) == first
    assert fresh._context is None  # answered from the cache, nothing trained
    assert set(fresh.test_metrics(ARCH, seed=1)) == {"test_recall", "test_ndcg"}
    assert fresh.evaluate(ARCH, seed=2) != first


def test_corrupt_cache_entry_is_recomputed(tiny_dataset, tmp_path):
    path = tmp_path / "c.sqlite"
    evaluator = LiveEvaluator(tiny_dataset, FAST, cache=path)
    original = evaluator.evaluate(ARCH, seed=0)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE results_v2 SET result = ?", ('{"arch": "trunc',))
    with pytest.warns(UserWarning, match="corrupt cache entry"):
        again = LiveEvaluator(tiny_dataset, FAST, cache=path).evaluate(ARCH, seed=0)
    assert again.val_recall == original.val_recall


@pytest.mark.parametrize("damage", ["garbage", "truncate"])
def test_a_corrupt_cache_file_is_moved_aside_and_the_search_goes_on(tiny_dataset, tmp_path, damage):
    path = tmp_path / "c.sqlite"
    original = LiveEvaluator(tiny_dataset, FAST, cache=path).evaluate(ARCH, seed=0)
    data = path.read_bytes()
    path.write_bytes(b"not a database " * 100 if damage == "garbage" else data[:100])
    with pytest.warns(UserWarning, match="not a readable cache"):
        evaluator = LiveEvaluator(tiny_dataset, FAST, cache=path)
    assert evaluator.evaluate(ARCH, seed=0).val_recall == original.val_recall
    assert list(tmp_path.glob("c.sqlite.corrupt-*"))
    assert evaluator.cache.get(evaluator.cache_key(ARCH, 0)) is not None


def test_unknown_fidelity_lists_allowed(tiny_dataset):
    with pytest.raises(ValueError, match="tabulation"):
        LiveEvaluator(tiny_dataset, "medium", cache=None)


def _evaluate_in_process(args):
    path, seed = args
    from nasenv.testing import make_tiny_dataset

    return LiveEvaluator(make_tiny_dataset(), FAST, cache=path).evaluate(ARCH, seed).val_recall


def test_cache_is_shared_by_concurrent_processes(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        values = pool.map(_evaluate_in_process, [(path, s % 2) for s in range(4)])
    assert values[0] == values[2] and values[1] == values[3]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM results_v2").fetchone()[0] == 2
        assert db.execute("SELECT COUNT(*) FROM claims_v2").fetchone()[0] == 0


class _FakeDataset:
    """What LiveEvaluator reads of a dataset before training (a child needs no torch)."""

    name = "tiny"
    sha256 = "0" * 64


class _CountingEvaluator(LiveEvaluator):
    """A LiveEvaluator whose training is a fake that counts calls across processes."""

    def __init__(self, trainings, path) -> None:
        super().__init__(_FakeDataset(), FAST, cache=path)  # type: ignore[arg-type]
        self.trainings = trainings

    def _train(self, arch, seed, heartbeat):
        with self.trainings.get_lock():
            self.trainings.value += 1
        time.sleep(0.5)
        if heartbeat is not None:
            heartbeat()
        curve = (os.getpid() / 1e7,)  # each process's own value
        return TrainResult(
            arch.to_string(),
            "tiny",
            seed,
            FAST,
            "ok",
            "",
            curve,
            curve,
            curve,
            curve,
            (1.0,),
            1,
            0.1,
        )


def _evaluate_counting(path, barrier, trainings, results):
    evaluator = _CountingEvaluator(trainings, path)
    barrier.wait()
    results.put(evaluator.evaluate(ARCH, seed=0))


def test_live_evaluators_in_two_processes_train_a_key_once(tmp_path):
    path = tmp_path / "shared.sqlite"
    context = multiprocessing.get_context("spawn")
    barrier, trainings, results = context.Barrier(2), context.Value("i", 0), context.Queue()
    processes = [
        context.Process(target=_evaluate_counting, args=(path, barrier, trainings, results))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert trainings.value == 1
    assert results.get(timeout=5) == results.get(timeout=5)


def test_a_directory_at_the_cache_path_stops_the_live_evaluator(tiny_dataset, tmp_path):
    path = tmp_path / "c.sqlite"
    path.mkdir()
    with pytest.raises(CacheError, match=re.escape(str(path))):
        LiveEvaluator(tiny_dataset, FAST, cache=path)
    assert path.is_dir() and [p.name for p in tmp_path.iterdir()] == ["c.sqlite"]


def test_the_device_is_part_of_the_cache_key(tiny_dataset, tmp_path, monkeypatch):
    path = tmp_path / "c.sqlite"
    cpu = LiveEvaluator(tiny_dataset, FAST, cache=path)
    cpu.evaluate(ARCH, seed=0)
    gpu = LiveEvaluator(tiny_dataset, FAST, cache=path, device="cuda:0")
    assert gpu.cache_key(ARCH, 0) == dataclasses.replace(cpu.cache_key(ARCH, 0), device="cuda")
    assert gpu.cache.get(gpu.cache_key(ARCH, 0)) is None
    assert cpu.cache.get(cpu.cache_key(ARCH, 0)) is not None
    monkeypatch.setattr("nasenv.cache.PROTOCOL_VERSION", 10**6)  # new training numerics
    assert cpu.cache.get(cpu.cache_key(ARCH, 0)) is None


def test_cache_names_are_still_importable_from_evaluators(tmp_path, monkeypatch):
    monkeypatch.setenv("RECNAS_CACHE", str(tmp_path / "x.sqlite"))
    assert default_cache_path() == tmp_path / "x.sqlite"
    assert ResultCache(default_cache_path()).path.is_file()


def test_every_back_end_says_where_its_numbers_come_from(tiny_dataset):
    from pathlib import Path

    from nasenv.evaluators import SOURCES, SurrogateEvaluator, TableEvaluator
    from nasenv.space import FULL
    from nasenv.surrogate import load_surrogate
    from nasenv.table import BenchmarkTable

    live = LiveEvaluator(tiny_dataset, FAST, cache=None).evaluate(ARCH, seed=0)
    table = BenchmarkTable.load(Path(__file__).resolve().parent / "data" / "tiny.npz")
    stored = TableEvaluator(table).evaluate(table.arch(0), seed=0)
    surrogate = SurrogateEvaluator(load_surrogate(), "Books-20core")
    predicted = surrogate.evaluate(FULL[7], seed=0)
    assert (stored.source, predicted.source, live.source) == SOURCES
    assert predicted.predicted and not live.predicted and not stored.predicted
    assert set(surrogate.test_metrics(FULL[7], 0)) == {
        "predicted_test_recall",
        "predicted_test_ndcg",
    }


def test_the_surrogates_live_counterpart_trains_what_it_predicts():
    from nasenv.evaluators import SurrogateEvaluator
    from nasenv.results import FIDELITIES
    from nasenv.surrogate import load_surrogate

    live = SurrogateEvaluator(load_surrogate(), "Books-20core").live_evaluator(cache=None)
    assert isinstance(live, LiveEvaluator) and live.cache is None
    assert live.dataset_name == "Books-20core" and live.config == FIDELITIES["tabulation"]
