"""Item features of adapted encoders: they load, verify, are refused when tampered, and the
frozen features load exactly as before."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from nasenv.data import (
    ADAPTED_FILE,
    DATA_DIR,
    ENCODERS,
    ChecksumError,
    adapted_encoders,
    adapted_provenance,
    get_spec,
    load_dataset,
    read_checksums,
    read_npz,
    sha256_of,
    write_checksums,
    write_npz,
)
from tests.fakes import DAMAGES, damage_file

TASK = "Books-Canada-5core"


@pytest.fixture
def adapted_dir(tmp_path):
    """The shipped datasets with TASK's adapted features replaced by a ``lora`` file of random
    features, listed in SHA256SUMS."""
    shutil.copytree(DATA_DIR, tmp_path, dirs_exist_ok=True)
    spec = get_spec(TASK)
    for shipped in tmp_path.glob(f"{spec.slug}-text-*.npz"):
        shipped.unlink()
    n_items = len(read_npz(DATA_DIR / spec.files[0])["item_isbn"])
    features = np.random.default_rng(0).standard_normal((n_items, 64)).astype(np.float16)
    write_npz(tmp_path / spec.text_file("lora"), {"item_text": features})
    write_checksums(tmp_path)
    return tmp_path, features


def test_adapted_features_load_in_place_of_the_frozen_ones(adapted_dir):
    directory, features = adapted_dir
    frozen = load_dataset(TASK, directory=directory)
    lora = load_dataset(TASK, directory=directory, encoder="lora")
    assert (frozen.encoder, lora.encoder) == ("frozen", "lora")
    np.testing.assert_array_equal(lora.item_text, features.astype(np.float32))
    np.testing.assert_array_equal(lora.train, frozen.train)
    assert lora.sha256 != frozen.sha256 and len(lora.sha256) == 64  # caches tell them apart
    assert "lora" in adapted_encoders(TASK, directory)


def test_the_frozen_features_and_checksum_are_those_of_before():
    dataset = load_dataset(TASK)
    spec = get_spec(TASK)
    assert dataset.encoder == "frozen"
    assert dataset.sha256 == read_checksums(DATA_DIR)[spec.files[0]]
    shipped = read_npz(DATA_DIR / spec.files[1])["item_text"].astype(np.float32)
    np.testing.assert_array_equal(dataset.item_text, shipped)
    assert load_dataset(TASK, encoder="frozen") is dataset  # one cached load


@pytest.mark.parametrize("damage", DAMAGES)
def test_tampered_adapted_features_are_refused(adapted_dir, damage):
    directory, _ = adapted_dir
    target = directory / get_spec(TASK).text_file("lora")
    expected = sha256_of(target)
    damage_file(target, damage)
    with pytest.raises(ChecksumError) as error:
        load_dataset(TASK, directory=directory, encoder="lora")
    assert target.name in str(error.value) and expected in str(error.value)


def test_features_of_the_wrong_number_of_items_are_refused(adapted_dir):
    directory, features = adapted_dir
    write_npz(directory / get_spec(TASK).text_file("lora"), {"item_text": features[:-1]})
    write_checksums(directory)
    with pytest.raises(ValueError, match=f"features of {len(features) - 1} items"):
        load_dataset(TASK, directory=directory, encoder="lora")


def test_a_missing_or_unknown_encoder_is_named_with_what_exists(adapted_dir):
    directory, _ = adapted_dir
    with pytest.raises(
        FileNotFoundError, match=r"no 'finetuned' item features.*\['frozen', 'lora'\]"
    ):
        load_dataset(TASK, directory=directory, encoder="finetuned")
    with pytest.raises(
        FileNotFoundError, match=r"adapt_encoder\.py --dataset .* --method full --ship"
    ):
        load_dataset(TASK, directory=directory, encoder="finetuned")
    with pytest.raises(ValueError, match=r"unknown encoder 'bert'; allowed: \['frozen'"):
        load_dataset(TASK, encoder="bert")


def test_every_shipped_adapted_file_is_listed_with_its_provenance():
    sums = read_checksums(DATA_DIR)
    records = adapted_provenance()
    adapted = [name for name in sums if "-text-" in name]
    assert sorted(records) == sorted(adapted)
    for name, record in records.items():
        assert record["sha256"] == sums[name] == sha256_of(DATA_DIR / name)
        assert record["encoder"] in ENCODERS[1:] and name == get_spec(record["dataset"]).text_file(
            record["encoder"]
        )
        assert record["pairs_from"].startswith("training interactions only")
        assert record["adapt_seconds"] > 0 and record["selection"]
        dataset = load_dataset(record["dataset"], encoder=record["encoder"])
        assert dataset.item_text.shape == (dataset.n_items, record["text_dim"])
    assert (DATA_DIR / ADAPTED_FILE).exists() == bool(records)
