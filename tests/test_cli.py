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
