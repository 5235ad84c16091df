import json
import subprocess
import sys


def test_evaluate_command_trains_on_the_shipped_data(tmp_path):
    out = tmp_path / "result.json"
    arch = "layers=lgconv,combine=mean,dim=16,items=text,loss=bce,lr=0.05,reg=0"
    completed = subprocess.run(
        [sys.executable, "-m", "nasenv", "evaluate", arch, "--max-epochs", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "test Recall@20" in completed.stdout
    result = json.loads(out.read_text())
    assert result["arch"] == arch and result["dataset"] == "Books-20core"
    assert len(result["val_recall"]) == 1 and 0 < result["val_recall"][0] < 1


def test_evaluate_command_names_a_bad_architecture():
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "nasenv",
            "evaluate",
            "layers=foo,combine=last,dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001",
        ],
        capture_output=True,
        text=True,
    )
    assert completed.returncode != 0
    assert "layer1='foo' is not one of" in completed.stderr


def test_recnas_agents_lists_every_agent():
    completed = subprocess.run(
        [sys.executable, "-m", "agents.cli", "agents"], capture_output=True, text=True, check=True
    )
    from agents import AGENTS

    for name in AGENTS:
        assert name in completed.stdout


def test_recnas_search_prints_the_best_and_writes_the_history(tmp_path, monkeypatch, capsys):
    from agents import cli
    from nasenv.env import RecNASEnv
    from tests.conftest import PlantedEvaluator

    made = {}

    def fake_make(env_id, **kwargs):
        made.update(kwargs, env_id=env_id)
        return RecNASEnv(evaluator=PlantedEvaluator(), space="core")

    monkeypatch.setattr(cli.gym, "make", fake_make)
    out = tmp_path / "run.json"
    cli.main(["search", "--agent", "evolution", "--budget", "15", "--seed", "4", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "evolution (seed 4): 15 evaluations" in printed and "best (evaluation" in printed
    assert made["env_id"] == "RecNAS-Books-v0" and made["seed_policy"] == "fixed"
    result = json.loads(out.read_text())
    assert len(result["history"]) == 15 and result["budget"]["evaluations"] == 15
    assert result["best"]["reward"] == max(t["reward"] for t in result["history"])
    assert set(result["test_metrics"]) == {"test_recall", "test_ndcg"}


def test_recnas_search_runs_on_the_shipped_table_and_explains_a_missing_one(
    capsys, tmp_path, monkeypatch
):
    import pytest

    import nasenv.table
    from agents import cli

    cli.main(["search", "--agent", "random", "--budget", "20", "--seed", "1"])
    printed = capsys.readouterr().out
    assert "random (seed 1): 20 evaluations" in printed and "test Recall@20" in printed
    monkeypatch.setattr(nasenv.table, "TABLE_DIR", tmp_path)  # no table ships there
    with pytest.raises(SystemExit, match=r"no table books-canada-5core.npz.*RecNAS-Books-Live-v0"):
        cli.main(["search", "--dataset", "Books-Canada-5core", "--budget", "5"])
    monkeypatch.undo()
    with pytest.raises(SystemExit, match="unknown fidelity 'huge'"):
        cli.main(["search", "--fidelity", "huge", "--budget", "5"])


def test_recnas_search_sets_hyperparameters_and_names_the_allowed_ones(tmp_path):
    import pytest

    from agents import cli

    assert cli.hyperparameters("reinforce", ["avoid_repeats=true", "learning_rate=0.005"]) == {
        "avoid_repeats": True,
        "learning_rate": 0.005,
    }
    assert cli.hyperparameters("evolution", ["population_size=7"]) == {"population_size": 7}
    with pytest.raises(SystemExit, match=r"'lr=1'.*reinforce's hyperparameters.*learning_rate"):
        cli.hyperparameters("reinforce", ["lr=1"])
    with pytest.raises(SystemExit, match=r"avoid_repeats must be true or false, got 'yes'"):
        cli.hyperparameters("reinforce", ["avoid_repeats=yes"])
    with pytest.raises(SystemExit, match=r"batch_size must be an integer, got '2.5'"):
        cli.hyperparameters("reinforce", ["batch_size=2.5"])
    out = tmp_path / "run.json"
    cli.main(["search", "--agent", "reinforce", "--budget", "30", "--set", "avoid_repeats=true",
              "--out", str(out)])  # fmt: skip
    history = json.loads(out.read_text())["history"]
    assert len({t["arch"] for t in history}) == 30
