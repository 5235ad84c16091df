import json
import subprocess
import sys
import typing

import pytest


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
    # the id's own protocol unless asked otherwise: no metric or seed policy passed
    assert made == {"env_id": "RecNAS-Books-v0"}
    result = json.loads(out.read_text())
    assert len(result["history"]) == 15 and result["budget"]["evaluations"] == 15
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


# --- failing like a good command line: one line on stderr, a non-zero exit, no traceback ---

BAD_ARCH = "layers=foo,combine=last,dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001"


def run_in_process(main, argv, capsys):
    """Run ``main(argv)`` as the interpreter would run the command: the exit status and stderr.

    A ``SystemExit`` carrying a message is what the interpreter prints on stderr with status 1.
    """
    capsys.readouterr()
    try:
        main(argv)
    except SystemExit as exit_:
        code = exit_.code
    except KeyboardInterrupt:  # would end the command with a traceback (and stop pytest)
        raise AssertionError("KeyboardInterrupt escaped the command") from None
    else:
        code = 0
    err = capsys.readouterr().err
    if isinstance(code, str):
        err, code = err + code + "\n", 1
    return code, err


def one_line(err):
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def without(monkeypatch, *modules):
    """Make ``import MODULE`` raise ImportError for each of ``modules``, as if not installed."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["search", "--budget", "0"], "argument --budget: must be >= 1, got 0"),
        (["search", "--budget", "-5"], "argument --budget: must be >= 1, got -5"),
        (["search", "--budget", "many"], "argument --budget: expected an integer >= 1"),
        (["search", "--seconds", "0"], "argument --seconds: must be a finite number > 0"),
        (["search", "--seconds", "-1.5"], "argument --seconds: must be a finite number > 0"),
        (["search", "--fresh-seeds", "-1"], "argument --fresh-seeds: must be >= 0, got -1"),
        (
            ["search", "--fresh-seeds", "3"],
            "table back end (RecNAS-Books-v0) cannot train new seeds; use --env-id "
            "RecNAS-Books-Live-v0",
        ),
        (["search", "--seed-policy", "any"], "argument --seed-policy: invalid choice"),
        (["leaderboard", "--agent", "random", "--runs", "1"], "--runs must be >= 2"),
        (["evaluate", "--max-epochs", "0"], "argument --max-epochs: must be >= 1, got 0"),
        (["evaluate", BAD_ARCH], "'foo'"),
        (["evaluate", "lightgcn"], "'lightgcn'"),
    ],
)
def test_recnas_refuses_bad_values_in_one_line(argv, expected, capsys):
    from agents import cli

    code, err = run_in_process(cli.main, argv, capsys)
    line = one_line(err)
    assert code == 2
    assert line.startswith(f"recnas {argv[0]}: error: ") and expected in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["evaluate", BAD_ARCH], "'foo'"),
        (["evaluate", "--threads", "0"], "argument --threads: must be >= 1, got 0"),
        (["evaluate", "--patience", "-2"], "argument --patience: must be >= 1, got -2"),
        ([], "required: command"),
    ],
)
def test_python_m_nasenv_refuses_bad_values_in_one_line(argv, expected, capsys):
    import nasenv.cli

    code, err = run_in_process(nasenv.cli.main, argv, capsys)
    line = one_line(err)
    assert code == 2 and line.startswith("python -m nasenv") and expected in line


def test_a_bad_budget_is_one_line_from_the_installed_command_too():
    completed = subprocess.run(
        [sys.executable, "-m", "agents.cli", "search", "--budget", "0"],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2 and completed.stdout == ""
    assert one_line(completed.stderr).startswith("recnas search: error: argument --budget")


@pytest.mark.parametrize(
    ("agent", "modules", "needs"),
    [
        ("tpe", ["optuna"], "optuna"),
        ("ppo", ["stable_baselines3", "sb3_contrib"], "stable_baselines3 and sb3_contrib"),
        ("ppo-plain", ["sb3_contrib"], "sb3_contrib"),
    ],
)
def test_an_agent_without_its_extra_fails_in_one_line(agent, modules, needs, monkeypatch, capsys):
    from agents import cli

    without(monkeypatch, *modules)
    code, err = run_in_process(cli.main, ["search", "--agent", agent, "--budget", "5"], capsys)
    line = one_line(err)
    assert code == 1
    assert line == f"recnas search: error: the {agent} agent needs {needs}: " + (
        "pip install 'recnas-books[rl]'"
    )


def test_tensorboard_without_the_package_fails_before_searching(tmp_path, monkeypatch, capsys):
    from agents import cli

    without(monkeypatch, "tensorboard", "torch.utils.tensorboard")
    logs = tmp_path / "logs"
    argv = ["search", "--budget", "5", "--tensorboard", str(logs)]
    code, err = run_in_process(cli.main, argv, capsys)
    assert code == 1 and "needs the tensorboard package: pip install" in one_line(err)
    assert not logs.exists()


def test_recnas_agents_marks_what_cannot_run_here(monkeypatch, capsys):
    from agents import cli

    without(monkeypatch, "optuna", "stable_baselines3")
    code, err = run_in_process(cli.main, ["agents"], capsys)
    assert code == 0 and err == ""
    cli.list_agents()
    lines = {
        line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line[0] != " "
    }
    for name in ("tpe", "ppo", "ppo-plain"):
        assert "unavailable here" in lines[name] and "pip install 'recnas-books[rl]'" in lines[name]
    assert "needs optuna" in lines["tpe"] and "needs stable_baselines3" in lines["ppo"]
    for name in ("random", "evolution", "qlearning", "reinforce"):
        assert "unavailable" not in lines[name]


@pytest.mark.parametrize("after", [3, 0])
def test_ctrl_c_during_a_search_prints_the_best_so_far_and_exits_130(after, monkeypatch, capsys):
    from agents import cli

    seen = []
    real_run_search = cli.run_search

    def interrupted_run_search(agent, env, budget, seed, on_trial, fresh_seeds=None):
        def on_trial_then_ctrl_c(trial):
            on_trial(trial)
            seen.append(trial)
            if len(seen) == after:
                raise KeyboardInterrupt

        if after == 0:
            raise KeyboardInterrupt
        return real_run_search(agent, env, budget, seed, on_trial_then_ctrl_c, fresh_seeds)

    monkeypatch.setattr(cli, "run_search", interrupted_run_search)
    code, err = run_in_process(cli.main, ["search", "--budget", "50", "--seed", "3"], capsys)
    assert code == 130 and "Traceback" not in err
    messages = [line for line in err.splitlines() if line.startswith("recnas")]
    assert len(messages) == 1 and err.rstrip().endswith(messages[0])  # after the progress bar
    if after == 0:
        assert messages[0] == "recnas search: interrupted before any architecture was evaluated"
        return
    best = max(seen, key=lambda t: (t.reward, -t.number))
    assert messages[0] == (
        f"recnas search: interrupted after 3 evaluations; best so far (evaluation {best.number}): "
        f"{best.arch}  validation Recall@20 {best.val_recall:.4f}, NDCG@20 {best.val_ndcg:.4f}"
    )


def test_ctrl_c_during_an_evaluation_exits_130_in_one_line(monkeypatch, capsys):
    import nasenv.cli

    def ctrl_c(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(nasenv.cli, "load_dataset", ctrl_c)
    code, err = run_in_process(nasenv.cli.main, ["evaluate"], capsys)
    assert code == 130 and one_line(err) == "python -m nasenv: interrupted"


@pytest.mark.parametrize("agent", ["random", "evolution", "qlearning", "tpe"])
def test_a_table_search_does_not_import_torch(agent):
    if agent == "tpe":
        pytest.importorskip("optuna")
    code = (
        "import agents.cli, sys; "
        f"agents.cli.main(['search', '--agent', {agent!r}, '--budget', '5']); "
        "print('torch' in sys.modules, 'torch_geometric' in sys.modules)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert f"{agent} (seed 0): 5 evaluations" in completed.stdout
    assert completed.stdout.splitlines()[-1] == "False False"


def test_a_reader_that_leaves_early_gets_no_traceback():
    import subprocess
    import sys

    done = subprocess.run(
        f"{sys.executable} -m agents.cli agents | true",  # the reader never reads
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stderr == ""


# --- every number says what it is: a surrogate's are predictions (issue 24) ---

SURROGATE_ID = "RecNAS-Books-Surrogate-v0"


class FakeWriter:
    """Stands for TensorBoard's ``SummaryWriter``: records the tags."""

    tags: typing.ClassVar[set[str]] = set()

    def __init__(self, logdir):
        FakeWriter.tags = set()

    def add_scalar(self, tag, value, step):
        FakeWriter.tags.add(tag)

    def close(self):
        pass


def test_a_surrogate_search_reports_predictions_as_predictions(tmp_path, monkeypatch, capsys):
    import shlex

    from agents import cli

    monkeypatch.setattr(cli, "_summary_writer_class", lambda prog: FakeWriter)
    out = tmp_path / "run.json"
    argv = ["search", "--env-id", SURROGATE_ID, "--budget", "20", "--out", str(out)]
    cli.main([*argv, "--tensorboard", str(tmp_path / "logs")])
    printed = capsys.readouterr().out
    assert FakeWriter.tags == {
        "predicted_reward",
        "best_predicted_reward",
        "best_predicted_reward_by_seconds",
    }
    result = json.loads(out.read_text())
    assert result["predicted"] is True and result["source"] == "surrogate"
    assert {t["source"] for t in result["history"]} == {"surrogate"}
    assert set(result["test_metrics"]) == {"predicted_test_recall", "predicted_test_ndcg"}
    best = result["best"]
    assert f"predicted validation Recall@20 {best['val_recall']:.4f}" in printed
    assert "predicted test Recall@20" in printed and "\n  test Recall@20" not in printed
    assert "--fresh-seeds N" in printed
    # the printed command is one the evaluate command reads: the best, seed 1000, tabulation
    command = next(line for line in printed.splitlines() if "recnas evaluate" in line)
    words = shlex.split(command.partition("for real: ")[2])
    seen = {}
    monkeypatch.setattr(cli, "evaluate", lambda args, parser: seen.update(vars(args)))
    cli.main(words[1:])
    assert seen["arch"] == best["arch"] and seen["seed"] == 1000
    assert (seen["max_epochs"], seen["patience"]) == (30, 5)


def test_fresh_seeds_train_the_surrogates_best_for_real(tmp_path, monkeypatch, capsys):
    from agents import cli
    from nasenv.evaluators import SurrogateEvaluator

    trained = []

    class FakeLive:
        dataset_name = "Books-20core"

        def test_metrics(self, arch, seed):
            trained.append((arch.to_string(), seed))
            return {"test_recall": 0.125, "test_ndcg": 0.0625}

    made = []

    def live_evaluator(self, *args, **kwargs):
        made.append((self.dataset_name, self.fidelity))
        return FakeLive()

    monkeypatch.setattr(SurrogateEvaluator, "live_evaluator", live_evaluator)
    out = tmp_path / "run.json"
    argv = ["search", "--env-id", SURROGATE_ID, "--budget", "20", "--fresh-seeds", "2"]
    cli.main([*argv, "--out", str(out)])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert made == [("Books-20core", "tabulation")]
    assert trained == [(result["best"]["arch"], 1000), (result["best"]["arch"], 1001)]
    assert result["fresh_seeds"] == [1000, 1001]
    assert result["test_metrics"]["test_recall"] == 0.125
    assert "predicted_test_recall" in result["test_metrics"]
    assert "measured test Recall@20 0.1250, NDCG@20 0.0625 (seeds 1000-1001" in printed
    assert "recnas evaluate" not in printed


def test_a_table_search_keeps_its_tags_and_its_report(tmp_path, monkeypatch, capsys):
    from agents import cli

    monkeypatch.setattr(cli, "_summary_writer_class", lambda prog: FakeWriter)
    cli.main(["search", "--budget", "10", "--tensorboard", str(tmp_path / "logs")])
    printed = capsys.readouterr().out
    assert FakeWriter.tags == {"reward", "best_reward", "best_reward_by_seconds"}
    assert "\n  validation Recall@20" in printed and "\n  test Recall@20" in printed
    assert "predicted" not in printed


def test_an_interrupted_surrogate_search_says_its_best_is_predicted():
    from agents import cli
    from agents.runner import Trial

    trial = Trial(3, "layers=gcn", 0.1, 0.1, 0.05, 0, "ok", 10.0, 30.0, source="surrogate")
    assert "  predicted validation Recall@20 0.1000" in cli._best_so_far(trial, 5)
    table = Trial(3, "layers=gcn", 0.1, 0.1, 0.05, 0, "ok", 10.0, 30.0, source="table")
    assert "  validation Recall@20 0.1000" in cli._best_so_far(table, 5)
    assert "predicted" not in cli._best_so_far(table, 5)


def test_ctrl_c_keeps_the_evaluations_made_so_far_in_out(monkeypatch, capsys, tmp_path):
    from agents import cli

    real_run_search = cli.run_search

    def interrupted_run_search(agent, env, budget, seed, on_trial, fresh_seeds=None):
        def on_trial_then_ctrl_c(trial):
            on_trial(trial)
            if trial.number == 4:
                raise KeyboardInterrupt

        return real_run_search(agent, env, budget, seed, on_trial_then_ctrl_c, fresh_seeds)

    monkeypatch.setattr(cli, "run_search", interrupted_run_search)
    out = tmp_path / "run.json"
    code, _ = run_in_process(cli.main, ["search", "--budget", "50", "--out", str(out)], capsys)
    saved = json.loads(out.read_text())
    assert code == 130 and saved["interrupted"] and len(saved["history"]) == 4
    assert saved["best"] == max(saved["history"], key=lambda t: (t["reward"], -t["number"]))
