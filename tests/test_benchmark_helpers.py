"""The functions that turn benchmark runs into reported numbers, and the benchmark scripts run
the way their users run them: ``python -m benchmarks.<name>`` from the repository root, in a
child process (the tests import nothing of ``benchmarks``)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nasenv.data import DEFAULT_DATASET, TRAINING_TASKS, sha256_of
from nasenv.leaderboard import hitting_time, incumbent_curve, median_interval, top_threshold
from nasenv.table import TABLE_DIR, BenchmarkTable, shipped_tables, table_filename
from nasenv.testing import TINY_SPACE

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "tiny.npz"


def benchmark(name: str, *args: str | Path, env: dict[str, str] | None = None, check=True):
    """``python -m benchmarks.NAME ARGS`` in the repository root; the finished process."""
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if check and done.returncode:
        pytest.fail(f"benchmarks.{name} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


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


def test_table_stats_on_the_sample_table(table, tmp_path):
    done = benchmark("table_stats", "--sample", "--results", tmp_path, "--no-plot")
    s = json.loads((tmp_path / "table_stats-sample.json").read_text())
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
    assert "signal-to-noise" in done.stdout
    assert not list(tmp_path.glob("*.png"))  # --no-plot


def test_seed_count_reports_every_shipped_release_table_and_its_agreement(tmp_path):
    done = benchmark("seed_count", "--results", tmp_path, "--no-plot")
    s = json.loads((tmp_path / "seed_count.json").read_text())
    tasks = {r["dataset"]: r for r in s["tasks"]}
    assert tasks["Books-20core"]["seeds"] == [0, 1, 2, 3, 4]
    assert "Books-10core" in s["missing"]  # its release 1 table is not shipped yet
    for r in tasks.values():
        halves = r["split_halves"]
        assert [h["k"] for h in halves] == list(range(1, len(r["seeds"]) // 2 + 1))
        assert all(-1 <= h["kendall_tau"] <= h["spearman"] <= 1 for h in halves)
        rel = r["reliability"]  # Spearman-Brown: more seeds, a more reliable mean
        assert 0 < rel["1"] <= rel["3"] < 1
    first = tasks["Books-20core"]["first_three_against_all"]
    assert first["rank_in_all_of_first_best"] >= 1 and 0 <= first["top10_overlap"] <= 1
    assert "Books-20core" in done.stdout


def test_quality_picks_the_architecture_most_runs_on_the_shipped_table_returned(tmp_path):
    x, y = (TINY_SPACE[i].to_string() for i in (5, 9))  # two architectures on ID features
    shipped = sha256_of(TABLE_DIR / table_filename(DEFAULT_DATASET))
    runs = [
        (shipped, [{"arch": x, "reward": 0.3}, {"arch": y, "reward": 0.2}]),
        (shipped, [{"arch": y, "reward": 0.5}]),
        (shipped, [{"arch": y, "reward": 0.1}, {"arch": x, "reward": 0.05}]),
        *[("0" * 64, [{"arch": x, "reward": 0.9}])] * 3,  # runs on another table do not count
    ]
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps({"table_sha256": t, "history": h}) + "\n" for t, h in runs))
    done = benchmark("quality", "--runs", path, "--dry-run")
    models = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert models["searched"] == y
    assert {"MF-BPR", "LightGCN", "GCN-3 concat", "LightGCN + text"} < set(models)


def test_quality_smoke_run_on_the_tiny_dataset_reports_every_model(tmp_path):
    benchmark("quality", "--sample", "--threads", "1", "--results", tmp_path, "--no-plot")
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ")
        for line in (tmp_path / "quality-sample.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith(("| model", "| ---"))
    }
    assert set(rows) == {"popularity", "MF-BPR", "LightGCN", "GCN-3 concat", "LightGCN + text"}
    for name, cells in rows.items():
        test_recall = float(cells[3].split(" ± ")[0])
        assert 0 < test_recall <= 1, name
    assert float(rows["LightGCN"][5].strip(" |")) == 1.0  # the reference column
    assert len((tmp_path / "quality-sample.jsonl").read_text().splitlines()) == 4 * 2


def test_adapted_encoders_pairs_seeds_tests_them_and_resumes(tmp_path):
    args = ["--quick", "--encoders", "frozen", "lora", "--threads", "1", "--results", tmp_path]
    benchmark("adapted_encoders", *args)
    journal = (tmp_path / "adapted_encoders-quick.jsonl").read_text().splitlines()
    assert len(journal) == 2 * 2  # encoders x seeds (LightGCN-3 only)
    summary = json.loads((tmp_path / "adapted_encoders-quick.json").read_text())["summary"]
    (task,) = summary
    (encoders,) = summary[task].values()
    assert set(encoders) == {"frozen", "lora"}
    frozen, lora = encoders["frozen"], encoders["lora"]
    assert lora["paired_seeds"] == 2 and 0 <= lora["p_seeds"] <= 1 and 0 <= lora["p_users"] <= 1
    diff = lora["test_recall"][0] - frozen["test_recall"][0]
    assert lora["test_recall_diff"][0] == pytest.approx(diff)
    assert all(0 <= r <= 1 for r in lora["bucket_recall"].values())
    records = [json.loads(line) for line in journal]
    assert all(r["bucket_pairs"] == records[0]["bucket_pairs"] for r in records)  # by the task
    assert all(sum(r["bucket_hits"]) == sum(r["user_hits"]) for r in records)
    benchmark("adapted_encoders", *args)  # every run is in the journal: nothing is trained again
    assert (tmp_path / "adapted_encoders-quick.jsonl").read_text().splitlines() == journal


def test_encoder_search_compares_both_spaces_and_resumes(tmp_path):
    benchmark("encoder_search", "--quick", "--results", tmp_path)
    journal = (tmp_path / "encoder_search-quick.jsonl").read_text().splitlines()
    assert len(journal) == 2 * 2 * 2  # agents x spaces x runs
    summary = json.loads((tmp_path / "encoder_search-quick.json").read_text())
    task = "Books-Canada-5core"
    tables = summary[task]["tables"]
    assert "encoder=" in tables["core-v1"]["arch"] and "encoder=" not in tables["core"]["arch"]
    rows = {(r["agent"], r["space"]): r for r in summary[task]["search"]}
    assert set(rows) == {(a, s) for a in ("random", "evolution") for s in ("core", "core-v1")}
    assert all(rows[(a, "core")]["adapted_share"] == 0 for a in ("random", "evolution"))
    assert all(rows[(a, "core")]["adapt_seconds"] == 0 for a in ("random", "evolution"))
    benchmark("encoder_search", "--quick", "--results", tmp_path)  # resumed: nothing run again
    assert (tmp_path / "encoder_search-quick.jsonl").read_text().splitlines() == journal


def test_transfer_tuning_leaves_each_task_out_and_reports_a_choice(tmp_path):
    args = ["--sample", "--seeds", "2", "--budget", "10", "--pretrain", "20", "--tune", "2.5"]
    args += ["0.5", "--tune-only", "--results", str(tmp_path)]
    text = benchmark("transfer", *args).stdout.strip()
    chosen = float(text.splitlines()[-1].removeprefix("chosen: --tanh-constant "))
    assert chosen in (2.5, 0.5)
    path = tmp_path / "transfer-tune-sample.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    # each fold: 2 seeds x (random, reinforce, portfolio, 2 bounds x 2 transfer methods); none
    # sees its task
    assert len(records) == 2 * 2 * 7
    assert all(r["task"] not in r["train_tasks"] for r in records)
    assert {r["tanh_constant"] for r in records if r["method"] == "random"} == {None}
    assert benchmark("transfer", *args).stdout.strip() == text  # resumed: nothing re-run
    assert len(path.read_text().splitlines()) == len(records)


def test_transfer_without_repeats_keeps_its_own_runs_and_never_repeats(tmp_path):
    args = ["--sample", "--seeds", "1", "--budget", "30", "--pretrain", "100", "--avoid-repeats"]
    done = benchmark("transfer", *args, "--results", tmp_path, "--no-plot")
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".jsonl"] == [
        "transfer-sample-no-repeats.jsonl"
    ]
    records = [
        json.loads(line)
        for line in (tmp_path / "transfer-sample-no-repeats.jsonl").read_text().splitlines()
    ]
    methods = ("random", "reinforce", "portfolio", "transfer-fine-tune", "transfer-frozen")
    assert sorted(r["method"] for r in records) == sorted(methods)
    for record in records:
        assert record["avoid_repeats"] is True
        if record["method"] != "random":
            assert len({t["arch"] for t in record["history"]}) == 30, record["method"]
    report = (tmp_path / "transfer-sample-no-repeats.md").read_text()
    assert report.strip() in done.stdout and report.count("| tiny-b |") == len(methods)


def test_run_all_runs_every_benchmark_as_a_module_of_the_package():
    quick = benchmark("run_all", "--quick", "--dry-run").stdout
    commands = [line[2:].split() for line in quick.splitlines() if line.startswith("$ ")]
    assert len(commands) == 17
    for command in commands:
        assert command[:2] == ["python", "-m"] and command[2].startswith("benchmarks.")
        assert (ROOT / "benchmarks" / f"{command[2].removeprefix('benchmarks.')}.py").is_file()


def test_run_all_skips_the_transfer_study_until_every_training_task_has_a_table():
    full = benchmark("run_all", "--dry-run").stdout
    missing = [task for task in TRAINING_TASKS if task not in shipped_tables()]
    transfer = "$ python -m benchmarks.transfer --tune 2.5 1.5 1.0 0.5"
    if missing:
        assert transfer not in full and str(missing) in full.splitlines()[0]
    else:
        assert f"{transfer}\n" in full and f"{transfer} --avoid-repeats" in full


def test_run_all_without_matplotlib_fails_in_one_line_before_running_anything(tmp_path):
    (tmp_path / "matplotlib").mkdir()  # shadows the installed one: as if not installed
    (tmp_path / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = benchmark("run_all", "--quick", env=env, check=False)  # fails before running any
    assert done.returncode == 1 and "$ python" not in done.stdout
    assert done.stderr.strip() == (
        "python -m benchmarks.run_all: error: the benchmarks' plots need matplotlib: "
        "pip install 'recnas-books[plots]'"
    )


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="compares against a git revision")
def test_trainer_ab_trains_both_sides_in_turn_and_resumes(tmp_path):
    def worktrees() -> bytes:
        return subprocess.run(["git", "-C", ROOT, "worktree", "list"], capture_output=True).stdout

    before = worktrees()
    args = ["--base", "HEAD", "--archs", "1", "--dataset", "Books-Canada-5core", "--sample", "gat"]
    text = benchmark("trainer_ab", *args, "--results", tmp_path).stdout
    (journal,) = tmp_path.glob("trainer_ab-*-1t-gat.jsonl")
    (record,) = [json.loads(line) for line in journal.open()]
    assert "gat" in record["arch"].split(",")[0]  # an architecture with an attention layer
    assert "the 738 of 2000 trainings with a `gat` layer took 69%" in text
    for side in ("base", "head"):
        assert record[side]["status"] == "ok" and record[side]["cost_seconds"] > 0
        assert len(record[side]["val_recall"]) == record[side]["epochs"] >= 1
    assert "1 architectures (both sides finished)" in text
    benchmark("trainer_ab", *args, "--results", tmp_path)  # resumed: nothing trained again
    assert len(journal.read_text().splitlines()) == 1
    assert worktrees() == before  # the base's checkout is gone
