import dataclasses
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from nasenv.data import (
    DATA_DIR,
    DATASETS,
    ChecksumError,
    DatasetSpec,
    get_spec,
    load_dataset,
    read_npz,
    read_only,
    sha256_of,
    write_npz,
)
from nasenv.prepare import RawDataError, build_task, k_core, read_raw, split_per_user
from tests.fakes import DAMAGES, damage_file


def test_k_core_leaves_only_nodes_with_k_interactions():
    rng = np.random.default_rng(0)
    pairs = np.unique(rng.integers(0, 60, size=(1500, 2)), axis=0)
    core = k_core(pairs, 12)
    assert len(core) > 0
    assert np.bincount(core[:, 0])[np.unique(core[:, 0])].min() >= 12
    assert np.bincount(core[:, 1])[np.unique(core[:, 1])].min() >= 12
    # maximal: running again removes nothing
    assert len(k_core(core, 12)) == len(core)


def test_split_is_a_disjoint_per_user_partition():
    rng = np.random.default_rng(1)
    pairs = np.unique(np.stack([rng.integers(0, 20, 800), rng.integers(0, 50, 800)], 1), axis=0)
    pairs = k_core(pairs, 10)
    users = np.unique(pairs[:, 0])
    pairs[:, 0] = np.searchsorted(users, pairs[:, 0])
    train, val, test = split_per_user(pairs, len(users), (0.8, 0.1, 0.1), seed=3)
    keys = [set(map(tuple, part)) for part in (train, val, test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert set.union(*keys) == set(map(tuple, pairs))
    for part in (train, val, test):
        assert set(part[:, 0]) == set(range(len(users)))  # every user in every split
    again = split_per_user(pairs, len(users), (0.8, 0.1, 0.1), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    other = split_per_user(pairs, len(users), (0.8, 0.1, 0.1), seed=4)
    assert not np.array_equal(val, other[1])


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_shipped_datasets_load_with_published_sizes_and_no_leakage(name):
    data = load_dataset(name)
    expected = {
        "Books-20core": (2560, 4276, 195_611),
        "Books-10core": (6607, 13_231, 366_110),
        "Books-USA-20core": (1782, 3206, 137_770),
        "Books-Canada-5core": (810, 2056, 18_943),
        "Books-Europe-5core": (1180, 2455, 21_399),
    }
    assert (data.n_users, data.n_items, data.n_interactions) == expected[name]
    seen = set(map(tuple, data.train))
    assert not seen & set(map(tuple, data.val))
    assert not seen & set(map(tuple, data.test))
    assert not set(map(tuple, data.val)) & set(map(tuple, data.test))
    spec = get_spec(name)
    counts = np.bincount(np.concatenate([data.train, data.val, data.test])[:, 1])
    assert counts.min() >= spec.k
    assert data.item_text.shape == (data.n_items, spec.text_dim)
    assert np.isfinite(data.item_text).all()
    if spec.countries is not None:
        assert set(data.user_country.tolist()) <= set(spec.countries)


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(ValueError, match="Books-20core"):
        load_dataset("Books-99core")


@pytest.mark.parametrize("damage", DAMAGES)
def test_tampered_file_is_refused_with_name_and_expected_hash(tmp_path, damage):
    shutil.copytree(DATA_DIR, tmp_path, dirs_exist_ok=True)
    target = tmp_path / "books-20core.npz"
    expected = sha256_of(target)
    damage_file(target, damage)
    with pytest.raises(ChecksumError) as error:
        load_dataset("Books-20core", directory=tmp_path)
    assert "books-20core.npz" in str(error.value) and expected in str(error.value)


def test_an_unlisted_file_is_refused_with_how_to_make_it(tmp_path):
    shutil.copytree(DATA_DIR, tmp_path, dirs_exist_ok=True)
    sums = (tmp_path / "SHA256SUMS").read_text().splitlines()
    kept = [line for line in sums if not line.endswith("books-20core-text.npz")]
    (tmp_path / "SHA256SUMS").write_text("\n".join(kept) + "\n")
    with pytest.raises(FileNotFoundError, match=r"books-20core-text\.npz listed in .*--dataset"):
        load_dataset("Books-20core", directory=tmp_path)


def test_npz_writer_is_byte_reproducible(tmp_path):
    arrays = {"b": np.arange(5, dtype=np.int32), "a": np.array(["x", "yz"])}
    write_npz(tmp_path / "one.npz", arrays)
    write_npz(tmp_path / "two.npz", arrays)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    back = read_npz(tmp_path / "one.npz")
    assert back["a"].tolist() == ["x", "yz"] and back["b"].tolist() == list(range(5))


def _write_raw(directory: Path, extra_rating_line: str = "") -> None:
    books = ['"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";"S";"M";"L"']
    for i in range(6):
        books.append(f'"{i:09d}x";"Title \\"{i}\\"";"Author {i}";"2000";"Pub";"s";"m";"l"')
    books.append('"000000000X";"Duplicate once upper-cased";"A";"1999";"P";"s";"m";"l"')
    users = ['"User-ID";"Location";"Age"']
    users += [f'"{u}";"town, state, {"usa" if u < 4 else "canada"}";NULL' for u in range(1, 7)]
    ratings = ['"User-ID";"ISBN";"Book-Rating"']
    for u in range(1, 7):
        for i in range(6):
            if (u + i) % 3:
                ratings.append(f'"{u}";"{i:09d}x";"{(u * i) % 11}"')
    ratings.append('"1";"NOT-IN-CATALOGUE";"5"')
    if extra_rating_line:
        ratings.append(extra_rating_line)
    (directory / "BX-Books.csv").write_text("\n".join(books) + "\n", encoding="latin-1")
    (directory / "BX-Users.csv").write_text("\n".join(users) + "\n", encoding="latin-1")
    (directory / "BX-Book-Ratings.csv").write_text("\n".join(ratings) + "\n", encoding="latin-1")


def test_raw_reading_counts_bad_rows_and_builds_a_task(tmp_path):
    _write_raw(tmp_path, extra_rating_line='"2";"broken row"')
    raw = read_raw(tmp_path)
    assert raw.skipped == {"BX-Books.csv": 0, "BX-Users.csv": 0, "BX-Book-Ratings.csv": 1}
    assert len(raw.books) == 6  # upper-casing made one duplicate ISBN, dropped
    assert raw.books["000000000X"].title == 'Title "0"'
    task = build_task(raw, DatasetSpec("t", k=3, split=(0.5, 0.25, 0.25)))
    n = len(task["train"]) + len(task["val"]) + len(task["test"])
    assert n == sum(1 for u in range(1, 7) for i in range(6) if (u + i) % 3)
    usa = build_task(raw, DatasetSpec("t-usa", k=2, countries=("usa",), split=(0.5, 0.25, 0.25)))
    assert set(usa["user_country"]) == {"usa"} and len(usa["user_id"]) == 3


def test_missing_raw_files_are_named(tmp_path):
    with pytest.raises(RawDataError, match=r"BX-Books\.csv"):
        read_raw(tmp_path)
    with pytest.raises(RawDataError, match="neither a directory"):
        read_raw(tmp_path / "nothing.zip")


def test_spec_validation():
    with pytest.raises(ValueError, match="k must be"):
        DatasetSpec("x", k=0)
    with pytest.raises(ValueError, match="split"):
        DatasetSpec("x", k=5, split=(0.5, 0.5, 0.5))


def test_a_loaded_dataset_is_read_only_so_a_write_cannot_reach_later_loads():
    data = load_dataset("Books-Canada-5core")
    assert load_dataset("Books-Canada-5core") is data  # cached: shared in the process
    arrays = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
    arrays = {name: value for name, value in arrays.items() if isinstance(value, np.ndarray)}
    assert len(arrays) == 9  # user_id included
    for name, array in arrays.items():
        assert not array.flags.writeable, name
    first = int(data.train[0, 1])
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        data.train[0, 1] = first + 1
    with pytest.raises(ValueError, match="read-only"):
        data.item_text *= 2
    with pytest.raises(ValueError, match="read-only"):
        data.item_title[0] = "changed"
    again = load_dataset("Books-Canada-5core")
    assert int(again.train[0, 1]) == first and again.item_title[0] != "changed"


def test_a_dataset_made_in_memory_keeps_the_callers_arrays_writable(tiny_dataset):
    train = np.array(tiny_dataset.train)
    made = dataclasses.replace(tiny_dataset, train=train)
    assert train.flags.writeable and not made.train.flags.writeable
    np.testing.assert_array_equal(made.train, train)
    with pytest.raises(TypeError, match=r"BooksDataset\.val: expected a numpy array, got list"):
        dataclasses.replace(tiny_dataset, val=tiny_dataset.val.tolist())
    view = read_only(train)
    assert view.base is train and not view.flags.writeable


def test_training_on_a_read_only_dataset_copies_without_warnings(tiny_dataset):
    from nasenv.train import TrainingContext

    assert not tiny_dataset.train.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.from_numpy would warn: "not writable"
        context = TrainingContext(tiny_dataset, k=5)
    context.train[0, 0] = -1  # the context's own copy
    assert tiny_dataset.train[0, 0] != -1
