import multiprocessing
import sqlite3

import pytest

from nasenv.evaluators import Evaluation, Evaluator, LiveEvaluator
from nasenv.space import Architecture
from nasenv.train import TrainConfig

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
        db.execute("UPDATE results SET result = ?", ('{"arch": "trunc',))
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
    assert evaluator.cache.get(tiny_dataset.sha256, original.arch, 0, FAST) is not None


def test_unknown_fidelity_lists_allowed(tiny_dataset):
    with pytest.raises(ValueError, match="tabulation"):
        LiveEvaluator(tiny_dataset, "medium", cache=None)


def _evaluate_in_process(args):
    path, seed = args
    from tests.conftest import make_tiny_dataset

    return LiveEvaluator(make_tiny_dataset(), FAST, cache=path).evaluate(ARCH, seed).val_recall


def test_cache_is_shared_by_concurrent_processes(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        values = pool.map(_evaluate_in_process, [(path, s % 2) for s in range(4)])
    assert values[0] == values[2] and values[1] == values[3]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 2
