"""The README's walk-through from a CSV to recommendations runs as written, on a synthetic file.

Every ``recnas`` line of the "Your own data" block runs through ``agents.cli.main`` in a fresh
directory, data home and live cache; only the search's budget is cut (40 -> 6 evaluations) to
keep the suite fast. The ``pip install`` line is the reader's, not the test's.
"""

from __future__ import annotations

import csv
import re
import shlex
from pathlib import Path

import numpy as np

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def walkthrough() -> list[str]:
    section = README.split("## Your own data", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None, "the README's 'Your own data' section has no bash block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def write_files(directory: Path) -> None:
    """120 users (ids 0..119) with 12 items each of 80, in two taste groups; item texts."""
    rng = np.random.default_rng(0)
    with open(directory / "ratings.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "rating"])
        for user in range(120):
            own = np.arange(user % 2, 80, 2)
            for item in rng.choice(own, size=12, replace=False):
                writer.writerow([user, f"sku-{item}", int(rng.integers(1, 6))])
    with open(directory / "items.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "title", "author"])
        for item in range(80):
            writer.writerow([f"sku-{item}", f"Book number {item}", f"Author {item % 9}"])


def test_the_walkthrough_has_five_commands_from_a_csv_to_recommendations():
    lines = walkthrough()
    assert len(lines) == 5
    assert lines[0].startswith("pip install") and lines[-1].startswith("recnas recommend")


def test_the_walkthrough_runs_as_written(tmp_path, monkeypatch, capsys):
    from agents.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECNAS_DATA_DIR", str(tmp_path / "home"))
    monkeypatch.setenv("RECNAS_CACHE", str(tmp_path / "live.sqlite"))
    write_files(tmp_path)
    for line in walkthrough()[1:]:
        words = shlex.split(line.replace("--budget 40", "--budget 6"))
        assert words[0] == "recnas", line
        main(words[1:])
    out = capsys.readouterr().out
    assert "my-shop: 120 users, 80 items" in out
    assert "model written to my-shop.npz" in out
    ranking = out.split("user 42 on my-shop: top 10 of 80 items")[1].splitlines()[2:12]
    assert len(ranking) == 10 and all("Book number" in row for row in ranking)
    with open(tmp_path / "ratings.csv") as handle:
        seen = {row["item"] for row in csv.DictReader(handle) if row["user"] == "42"}
    assert not seen & {row.split()[1] for row in ranking}  # only items user 42 has not seen
    assert (tmp_path / "search.json").is_file()
    from nasenv.export import load_model

    assert load_model(tmp_path / "my-shop.npz").dataset_name == "my-shop"
