"""Bring your own data: import, register, load, search, and the errors of bad files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nasenv.data import ChecksumError, get_spec, known_datasets, load_dataset
from nasenv.importer import DataFileError, import_interactions, split_by_time
from nasenv.userdata import data_home, local_tasks, remove_task


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test with its own, empty data home."""
    monkeypatch.setenv("RECNAS_DATA_DIR", str(tmp_path / "home"))
    return tmp_path / "home"


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def interactions_rows(n_users: int = 30, n_items: int = 25, seed: int = 0) -> list[list[object]]:
    """Each user rates 6-12 distinct items (ratings 1-5, timestamps increasing)."""
    rng = np.random.default_rng(seed)
    rows: list[list[object]] = []
    clock = 1_000
    for user in range(n_users):
        for item in rng.choice(n_items, size=int(rng.integers(6, 13)), replace=False):
            clock += 1
            rows.append([100 + user, f"b{item:03d}", int(rng.integers(1, 6)), clock])
    return rows


@pytest.fixture
def ratings(tmp_path: Path) -> Path:
    rows = interactions_rows()
    rows.append([*rows[0][:3], 5])  # a repeated pair, earlier in time than its first row
    rows.append([999, "b000", 5, 1])  # a user with one interaction: the k-core drops them
    return write_csv(tmp_path / "ratings.csv", ["user", "item", "rating", "ts"], rows)


def fake_embedder(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in for MiniLM: 16-d vectors from the texts' bytes."""
    out = np.zeros((len(texts), 16))
    for i, text in enumerate(texts):
        for j, byte in enumerate(text.encode()):
            out[i, (j * 7 + byte) % 16] += byte / 100
    return out


def test_import_applies_the_recipe_and_registers_a_verified_task(ratings: Path, home: Path):
    report = import_interactions(ratings, "shop", k=5, progress=False)
    c = report.counts
    assert c["rows"] == len(interactions_rows()) + 2
    assert c["duplicate_pairs"] == 1
    assert c["kcore_removed_users"] >= 1  # user 999
    assert c["train"] + c["val"] + c["test"] == c["interactions"]
    data = load_dataset("shop")
    assert data.n_users == c["users"] and data.n_items == c["items"]
    assert 999 not in data.user_id.tolist()
    assert data.user_id.dtype == np.int64  # integer ids sort numerically
    assert list(data.user_id) == sorted(data.user_id)
    pairs = np.concatenate([data.train, data.val, data.test])
    assert len(np.unique(pairs, axis=0)) == len(pairs)  # the repeated pair once
    for part in (data.val, data.test):  # every user has a validation and a test interaction
        assert set(part[:, 0]) == set(range(data.n_users))
    degrees = np.bincount(pairs[:, 1], minlength=data.n_items)
    assert degrees.min() >= 5 and np.bincount(pairs[:, 0]).min() >= 5
    assert data.item_text.shape == (data.n_items, 0)  # no items file: ID-only
    assert "shop" in known_datasets() and get_spec("shop").k == 5
    assert (home / "tasks" / "shop" / "SHA256SUMS").is_file()
    info = json.loads((home / "tasks" / "shop" / "task.json").read_text())
    assert info["sources"]["interactions"]["file"] == "ratings.csv"
    assert len(info["sources"]["interactions"]["sha256"]) == 64


def test_the_same_files_and_options_give_the_same_bytes(ratings: Path, home: Path):
    import_interactions(ratings, "a", progress=False)
    import_interactions(ratings, "b", progress=False)
    assert (home / "tasks/a/a.npz").read_bytes() == (home / "tasks/b/b.npz").read_bytes()


def test_min_rating_keeps_only_rows_rated_at_least_that(ratings: Path):
    report = import_interactions(ratings, "s", rating_column="rating", min_rating=3, k=3)
    with open(ratings) as handle:
        low = sum(int(row["rating"]) < 3 for row in csv.DictReader(handle))
    assert report.counts["below_min_rating"] == low


def test_time_split_puts_each_users_latest_interactions_in_test(ratings: Path):
    import_interactions(ratings, "t", timestamp_column="ts", split="time", progress=False)
    data = load_dataset("t")
    with open(ratings) as handle:
        rows = list(csv.DictReader(handle))
    first: dict[tuple[str, str], int] = {}
    for row in rows:  # a repeated pair keeps its earliest time
        key = (row["user"], row["item"])
        first[key] = min(first.get(key, 10**9), int(row["ts"]))
    when = {
        (u, i): first[(str(data.user_id[u]), str(data.item_isbn[i]))]
        for u, i in np.concatenate([data.train, data.val, data.test])
    }
    for user in range(data.n_users):
        train = [when[(user, i)] for i in data.train[data.train[:, 0] == user, 1]]
        val = [when[(user, i)] for i in data.val[data.val[:, 0] == user, 1]]
        test = [when[(user, i)] for i in data.test[data.test[:, 0] == user, 1]]
        assert max(train) < min(val) and max(val) < min(test)


def test_split_by_time_breaks_ties_by_item_and_sorts_each_part():
    pairs = np.array([[0, 3], [0, 1], [0, 2], [0, 0], [0, 4]])
    train, val, test = split_by_time(pairs, np.zeros(5), 1, (0.6, 0.2, 0.2))
    assert test.tolist() == [[0, 4]] and val.tolist() == [[0, 3]]
    assert train.tolist() == [[0, 0], [0, 1], [0, 2]]


def test_item_texts_are_embedded_and_titles_kept(ratings: Path, tmp_path: Path):
    items = [[f"b{i:03d}", f"Title {i}", f"Author {i % 3}"] for i in range(25)]
    items.append([*items[0][:1], "Another title", "x"])  # a repeated item: the first row kept
    items.append(["b999", "Never rated", "y"])
    path = write_csv(tmp_path / "items.csv", ["item", "title", "author"], items)
    report = import_interactions(
        ratings, "txt", items=path, text_columns=["title", "author"], embedder=fake_embedder
    )
    data = load_dataset("txt")
    assert data.item_text.shape == (data.n_items, 16)  # min(64, items, the embedder's 16)
    assert abs(float(data.item_text.astype(np.float64).std()) - 1) < 1e-2
    index = list(data.item_isbn).index("b000")
    assert data.item_title[index] == "Title 0"
    assert any("repeated item rows" in note for note in report.notes)
    assert any("not among the interactions" in note for note in report.notes)
    assert report.task.info["features"]["model"] == "custom"


def test_parquet_gives_the_same_task_as_csv(ratings: Path, tmp_path: Path, home: Path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    with open(ratings) as handle:
        rows = list(csv.DictReader(handle))
    table = pa.table({"user": [int(r["user"]) for r in rows], "item": [r["item"] for r in rows]})
    pq.write_table(table, tmp_path / "ratings.parquet")
    import_interactions(ratings, "from-csv", progress=False)
    import_interactions(tmp_path / "ratings.parquet", "from-parquet", progress=False)
    a, b = load_dataset("from-csv"), load_dataset("from-parquet")
    for name in ("train", "val", "test", "user_id", "item_isbn"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        ("user,item\n", {}, r"no interactions after the header"),
        ("", {}, r"the file is empty"),
        ("usr,item\nu,i\n", {}, r"no column 'user' \(the user column\).*--user-col"),
        ("user,item\nu1,a,b\n", {}, r"line 2 has 3 fields, the header has 2"),
        ("user,item\nu1,\n", {}, r"line 2, column 'item' is empty"),
        ("user,item,r\nu1,a,5\nu1,b,lots\n", {"rating_column": "r"}, r"line 3, column 'r'"),
        ("user,item,t\nu1,a,yesterday\n", {"timestamp_column": "t"}, r"line 2.*ISO 8601"),
    ],
)
def test_bad_files_name_the_file_line_and_column(tmp_path, content, options, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataFileError, match=message) as error:
        import_interactions(path, "bad", progress=False, **options)
    assert str(path) in str(error.value)
    assert local_tasks() == {}


def test_text_that_is_not_utf8_is_refused_with_its_line_and_column(tmp_path: Path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"user,item\nu1,caf\xe9\n")
    with pytest.raises(DataFileError, match=r"line 2, column 'item': byte 0xe9 is not UTF-8"):
        import_interactions(path, "bad", progress=False)


def test_an_empty_k_core_and_bad_options_are_refused(ratings: Path):
    with pytest.raises(DataFileError, match=r"nothing is left after the 50-core"):
        import_interactions(ratings, "s", k=50, progress=False)
    for options, message in [
        ({"k": 2}, r"k must be an integer >= 3"),
        ({"split": "time"}, r"needs the timestamp column"),
        ({"split": "daily"}, r"split must be one of \['random', 'time'\]"),
        ({"min_rating": 3}, r"needs the rating column"),
        ({"features": "bert"}, r"features must be one of"),
        ({"text_columns": ["title"]}, r"need an items file"),
    ]:
        with pytest.raises(ValueError, match=message):
            import_interactions(ratings, "s", progress=False, **options)
    with pytest.raises(ValueError, match=r"taken by the shipped task Books-20core"):
        import_interactions(ratings, "books-20core", progress=False)
    with pytest.raises(ValueError, match=r"is not allowed"):
        import_interactions(ratings, "../escape", progress=False)
    assert local_tasks() == {}


def test_an_existing_task_is_kept_unless_replaced(ratings: Path):
    import_interactions(ratings, "s", progress=False)
    before = load_dataset("s")
    with pytest.raises(ValueError, match=r"a local task 's' exists"):
        import_interactions(ratings, "s", k=3, progress=False)
    import_interactions(ratings, "s", k=3, split_seed=1, overwrite=True, progress=False)
    after = load_dataset("s")  # loaded anew: the recorded checksum changed
    assert after.sha256 != before.sha256 and get_spec("s").k == 3
    assert not np.array_equal(after.test, before.test)


def test_a_failed_import_registers_nothing_and_leaves_no_files(ratings, tmp_path, home):
    import_interactions(ratings, "s", progress=False)
    path = write_csv(tmp_path / "items.csv", ["item", "title"], [["b000", "T"]])

    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("the embedder crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        import_interactions(ratings, "new", items=path, text_columns=["title"], embedder=broken)
    with pytest.raises(RuntimeError, match="crashed"):
        import_interactions(
            ratings, "s", items=path, text_columns=["title"], embedder=broken, overwrite=True
        )
    assert sorted(p.name for p in (home / "tasks").iterdir()) == ["s"]
    assert load_dataset("s").item_text.shape[1] == 0  # the old task, untouched


def test_a_tampered_local_task_is_refused(ratings: Path, home: Path):
    import_interactions(ratings, "s", progress=False)
    target = home / "tasks" / "s" / "s.npz"
    content = bytearray(target.read_bytes())
    content[len(content) // 2] ^= 0xFF
    target.write_bytes(bytes(content))
    with pytest.raises(ChecksumError, match=r"s\.npz is corrupt or was modified"):
        load_dataset("s")


def test_remove_and_the_data_home(ratings: Path, home: Path):
    assert data_home() == home
    import_interactions(ratings, "s", progress=False)
    remove_task("s")
    assert local_tasks() == {}
    with pytest.raises(ValueError, match=r"no local task 's'"):
        remove_task("s")
    with pytest.raises(ValueError, match=r"unknown dataset 's'"):
        load_dataset("s")


def test_an_id_only_task_is_searched_live_without_text_choices(ratings: Path):
    import gymnasium as gym

    import nasenv  # noqa: F401  (registers the ids)
    from nasenv.space import SLOTS, Architecture

    import_interactions(ratings, "s", progress=False)
    env = gym.make("RecNAS-Books-Live-v0", dataset="s", fidelity="low", cache=None)
    assert env.unwrapped.space.name == "core-id-only"
    assert env.unwrapped.space.slot_choices("items") == ["id"]
    arch = Architecture.from_string(
        "layers=lgconv,combine=mean,dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001"
    )
    env.reset(seed=0)
    for value in arch.decisions():
        slot = len(env.unwrapped.decisions)
        _obs, reward, terminated, _truncated, info = env.step(SLOTS[slot].choices.index(value))
        if terminated:
            break
    assert terminated and info["source"] == "live" and 0 <= reward <= 1


def test_the_data_command_imports_lists_and_removes(ratings, capsys):
    from nasenv.cli import main

    main(["data", "import", str(ratings), "--name", "cli-task", "--quiet"])
    out = capsys.readouterr().out
    assert "cli-task:" in out and "--dataset cli-task" in out
    main(["data", "list"])
    assert "cli-task" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["data", "import", str(ratings), "--name", "cli-task", "--quiet"])
    assert exit_.value.code == 2
    assert "a local task 'cli-task' exists" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"no column 'u'"):
        main(["data", "import", str(ratings), "--name", "x", "--user-col", "u", "--quiet"])
    main(["data", "remove", "cli-task"])
    assert local_tasks() == {}
