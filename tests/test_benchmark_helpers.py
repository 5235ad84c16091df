"""The functions that turn benchmark runs into reported numbers."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from nasenv.leaderboard import hitting_time, incumbent_curve, median_interval, top_threshold
from nasenv.table import BenchmarkTable
from nasenv.train import TrainingContext

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "tiny.npz"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def table() -> BenchmarkTable:
    return BenchmarkTable.load(SAMPLE)


def test_incumbent_follows_the_best_reward_and_keeps_the_earliest_of_ties(table):
    a, b, c = table.arch_strings[:3]
    rows = incumbent_curve([a, b, c, a], [0.2, 0.1, 0.3, 0.3], table)
    assert rows.tolist() == [0, 0, 2, 2]
    assert incumbent_curve([5, 1], [0.1, 0.2], table).tolist() == [5, 1]
    assert hitting_time(np.array([0.1, 0.2, 0.5]), 0.2) == 2
    assert hitting_time(np.array([0.1, 0.2]), 0.9) == math.inf


def test_top_threshold_is_the_score_at_the_fraction_boundary_and_at_least_the_best():
    scores = np.random.default_rng(0).permutation(np.arange(250, 0, -1) / 1000.0)
    assert top_threshold(scores, 0.01) == 0.248  # the 3rd best of 250 (ceil 2.5)
    assert top_threshold(scores, 0.001) == 0.25  # fewer than one: the best counts


def test_median_interval_brackets_the_median_and_keeps_never_reached_runs():
    low, high = median_interval([float(x) for x in range(1, 21)])
    assert 1 <= low < 10.5 < high <= 20
    assert median_interval([1.0, math.inf, math.inf]) == (1.0, math.inf)
    assert median_interval([7.0] * 5) == (7.0, 7.0)


def test_table_stats_on_the_sample_table(table):
    table_stats = load_script("table_stats")
    s = table_stats.stats(table, SAMPLE)
    assert s["architectures"] == len(table) and s["seeds"] == list(table.seeds)
    quantiles = list(s["quantiles"].values())
    assert quantiles == sorted(quantiles)
    assert s["best"][0]["val_recall"] == pytest.approx(quantiles[-1])
    assert s["worst"][0]["val_recall"] == pytest.approx(quantiles[0])
    noise = s["seed_noise"]
    assert noise["signal_to_noise"] == pytest.approx(noise["std_of_means"] / noise["mean_seed_std"])
    assert s["fidelity"], "the sample's 8/3 budget has smaller answerable budgets"
    for row in s["fidelity"]:
        assert row["max_epochs"] <= table.max_epochs and row["patience"] <= table.patience
        assert -1 <= row["kendall_tau"] <= 1 and 0 < row["cost_fraction"] <= 1
    assert "signal-to-noise" in table_stats.markdown(s)


def test_quality_picks_the_architecture_most_runs_returned(tmp_path):
    quality = load_script("quality")
    runs = [
        [{"arch": "x", "reward": 0.3}, {"arch": "y", "reward": 0.2}],
        [{"arch": "y", "reward": 0.5}],
        [{"arch": "y", "reward": 0.1}, {"arch": "x", "reward": 0.05}],
    ]
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps({"history": h}) + "\n" for h in runs))
    assert quality.searched_architectures(path) == ["y"]


def test_popularity_recommends_the_most_interacted_unseen_item(tiny_dataset):
    # Half the users hold item 4 out for validation, the other half item 5; each is in the
    # training interactions of the other half, so it is the most popular item its users have not
    # seen.
    train, val, test = [], [], []
    for user in range(10):
        held_out, other = (4, 5) if user % 2 == 0 else (5, 4)
        train += [(user, item) for item in (0, 1, 2, 3, other)]
        val.append((user, held_out))
        test.append((user, 6 + user % 4))
    dataset = dataclasses.replace(
        tiny_dataset, n_users=10, n_items=10, train=np.array(train), val=np.array(val),
        test=np.array(test), item_text=tiny_dataset.item_text[:10],
    )  # fmt: skip
    metrics = load_script("quality").popularity(TrainingContext(dataset, k=1))
    assert metrics["val_recall"] == 1.0 and metrics["val_ndcg"] == 1.0


def test_transfer_tuning_leaves_each_task_out_and_reports_a_choice(tmp_path):
    transfer = load_script("transfer")
    args = transfer.parse_args(
        ["--sample", "--seeds", "2", "--budget", "10", "--pretrain", "20", "--tune", "2.5", "0.5"]
    )
    path = tmp_path / "transfer-tune-sample.jsonl"
    text, chosen = transfer.tune(args, path)
    assert text.splitlines()[-1] == f"chosen: --tanh-constant {chosen:g}" and chosen in (2.5, 0.5)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    # each fold: 2 seeds x (random, reinforce, portfolio, 2 bounds x 2 transfer methods); none
    # sees its task
    assert len(records) == 2 * 2 * 7
    assert all(r["task"] not in r["train_tasks"] for r in records)
    assert {r["tanh_constant"] for r in records if r["method"] == "random"} == {None}
    assert transfer.tune(args, path) == (text, chosen)  # resumed from the journal: nothing re-run
    assert len(path.read_text().splitlines()) == len(records)


def test_run_all_skips_the_transfer_study_until_every_training_task_has_a_table(monkeypatch):
    run_all = load_script("run_all")
    assert run_all.missing_tables(("Books-20core",)) == []
    monkeypatch.setattr(run_all, "missing_tables", lambda: ["Books-10core"])
    assert not any(step[0] == "transfer.py" for step in run_all.steps(quick=False))
    monkeypatch.setattr(run_all, "missing_tables", lambda: [])
    assert ["transfer.py", "--tune", "2.5", "1.5", "1.0", "0.5"] in run_all.steps(quick=False)


def test_transfer_without_repeats_keeps_its_own_runs_and_never_repeats(tmp_path):
    transfer = load_script("transfer")
    args = transfer.parse_args(
        ["--sample", "--seeds", "1", "--budget", "30", "--pretrain", "100", "--avoid-repeats"]
    )
    training, held_out, space = transfer.tables(args)
    path = tmp_path / "transfer-sample-no-repeats.jsonl"
    transfer.run(args, path, training, held_out, space, [2.5])
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["method"] for r in records} == set(transfer.METHODS)
    for record in records:
        assert record["avoid_repeats"] is True
        if record["method"] != "random":
            assert len({t["arch"] for t in record["history"]}) == 30, record["method"]
    args.avoid_repeats = False  # another setup: nothing of the journal is reused
    assert transfer.hitting_times(args, path, training, held_out) == {}
