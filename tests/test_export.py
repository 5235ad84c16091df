"""The final model (nasenv.export, recnas train / recommend / search --export) on the tiny
synthetic dataset."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest
import torch

from nasenv import export
from nasenv.data import ChecksumError, write_npz
from nasenv.export import FinalModel, UnknownUserError, load_model, train_final
from nasenv.models import GraphRecommender
from nasenv.results import TrainConfig
from nasenv.space import Architecture
from nasenv.train import TrainingContext, train_architecture
from tests.test_cli import one_line, run_in_process

ARCH = "layers=lgconv-sage:mean,combine=mean,dim=16,items=id+text,loss=bpr,lr=0.02,reg=0.0001"
CONFIG = TrainConfig(max_epochs=8, patience=3, batch_size=64)


@pytest.fixture(scope="module")
def final(tiny_dataset) -> FinalModel:
    return train_final(ARCH, tiny_dataset, (1000, 1001, 1002), CONFIG, progress=False, k=5)


@pytest.fixture(scope="module")
def saved(final, tmp_path_factory):
    return final.save(tmp_path_factory.mktemp("model") / "model.npz")


def without_timings(result):
    """``result`` without its measured seconds (wall time differs between any two runs)."""
    return dataclasses.replace(
        result, epoch_seconds=(), epoch_test_seconds=(), train_seconds=0.0, inference_ms=0.0
    )


def test_the_best_epoch_hook_changes_no_result(tiny_context):
    arch = Architecture.from_string(ARCH)
    seen = []

    def hook(epoch, model, user_repr, item_repr):
        seen.append(epoch)
        _ = {name: p.detach().clone() for name, p in model.named_parameters()}

    plain = train_architecture(arch, tiny_context, 4, CONFIG)
    hooked = train_architecture(arch, tiny_context, 4, CONFIG, on_best=hook)
    assert without_timings(plain) == without_timings(hooked)
    assert seen[-1] == plain.best_epoch and seen == sorted(seen)
    assert len(hooked.epoch_seconds) == len(plain.epoch_seconds)


def test_the_chosen_seed_is_the_best_on_validation_with_its_best_epoch(final, tiny_dataset):
    scores = [r.val_recall_best for r in final.results]
    assert final.seed == final.results[scores.index(max(scores))].seed
    assert [r.seed for r in final.results] == [1000, 1001, 1002]
    # the stored representations are those of the chosen seed's best validation epoch
    context = TrainingContext(tiny_dataset, k=5)
    users, items = torch.tensor(final.user_repr), torch.tensor(final.item_repr)
    assert context.val_eval(users, items).recall == final.result.val_recall_best
    assert context.test_eval(users, items).recall == final.result.test_recall
    assert set(final.weights) == {n for n, _ in final.to_module().named_parameters()}
    assert "chosen: seed" in final.summary() and final.summary().count("<- chosen") == 1


def test_test_metrics_never_choose_the_seed(tiny_dataset, tiny_context, monkeypatch):
    arch = Architecture.from_string(ARCH)
    real = train_architecture(arch, tiny_context, 0, TrainConfig(max_epochs=1, batch_size=64))
    model = GraphRecommender(arch, tiny_context.graph, tiny_context.item_text)
    val_test = {1000: (0.2, 0.9), 1001: (0.5, 0.1), 1002: (0.4, 0.8)}  # seed -> (val, test)

    def fake_train(arch, context, seed, config, on_epoch, on_best):
        with torch.no_grad():
            on_best(1, model, *model())
        val, test = val_test[seed]
        return dataclasses.replace(real, seed=seed, val_recall=(val,), test_recall_at_best=(test,))

    monkeypatch.setattr(export, "train_architecture", fake_train)
    chosen = train_final(arch, tiny_dataset, sorted(val_test), CONFIG, progress=False)
    assert chosen.seed == 1001


def test_every_seed_diverging_is_an_error(tiny_dataset, exploding_adam):
    arch = ARCH.replace("loss=bpr", "loss=bce")
    with pytest.raises(RuntimeError, match=r"every training of .* failed \(seed 1000: non-finite"):
        train_final(arch, tiny_dataset, (1000,), CONFIG, progress=False)


def test_save_and_load_round_trip_bit_identical(final, saved, tiny_dataset, tmp_path):
    loaded = load_model(saved, tiny_dataset)
    assert loaded.arch == final.arch and loaded.seed == final.seed and loaded.k == 5
    assert loaded.results == final.results
    for name in ("user_repr", "item_repr", "user_ids", "item_ids"):
        assert np.array_equal(getattr(loaded, name), getattr(final, name))
    assert set(loaded.weights) == set(final.weights)
    assert all(np.array_equal(loaded.weights[n], w) for n, w in final.weights.items())
    again = loaded.save(tmp_path / "again.npz")
    assert again.read_bytes() == saved.read_bytes()
    meta = export.read_metadata(saved)
    assert meta["format"] == export.FORMAT and meta["dataset_sha256"] == tiny_dataset.sha256
    assert meta["arch"] == ARCH and meta["seeds"] == [1000, 1001, 1002]
    with pytest.raises(ValueError, match="read-only"):
        loaded.user_repr[0, 0] = 1.0


def test_the_file_is_plain_arrays_read_without_pickle(saved):
    with zipfile.ZipFile(saved) as archive:
        names = archive.namelist()
        for name in names:
            with archive.open(name) as member:
                array = np.lib.format.read_array(member, allow_pickle=False)
            assert array.dtype != object
    assert {"user_repr.npy", "item_repr.npy", "user_id.npy", "item_id.npy", "meta.npy"} <= set(
        names
    )
    assert any(n.startswith("weight/") for n in names)
    assert not any("item_text" in n for n in names)  # a buffer: the dataset's, not a weight


def test_a_dataset_with_another_checksum_is_refused(final, saved, tiny_dataset):
    tampered = dataclasses.replace(tiny_dataset, sha256="f" * 64)
    with pytest.raises(ChecksumError) as error:
        load_model(saved, tampered)
    assert "0" * 64 in str(error.value) and "f" * 64 in str(error.value)
    assert str(saved) in str(error.value)
    with pytest.raises(ChecksumError, match="f" * 64):
        final.to_module(tampered)


def test_malformed_and_foreign_files_are_named(saved, tmp_path, tiny_dataset):
    text = tmp_path / "notes.npz"
    text.write_text("not a model")
    with pytest.raises(ValueError, match=r"notes.npz is not a recnas-final-model file"):
        load_model(text, tiny_dataset)
    foreign = tmp_path / "foreign.npz"
    write_npz(foreign, {"x": np.zeros(3)})
    with pytest.raises(ValueError, match=r"foreign.npz is not a recnas-final-model file"):
        load_model(foreign, tiny_dataset)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, meta=np.array([{"format": export.FORMAT}], dtype=object))
    with pytest.raises(ValueError, match=r"pickled.npz is not a recnas-final-model.*pickle"):
        load_model(pickled, tiny_dataset)
    arrays = dict(np.load(saved, allow_pickle=False))
    newer = json.loads(str(arrays["meta"]))
    newer["format_version"] = 99
    write_npz(tmp_path / "newer.npz", {**arrays, "meta": np.array(json.dumps(newer))})
    with pytest.raises(ValueError, match=r"newer.npz has format version 99.*upgrade"):
        load_model(tmp_path / "newer.npz", tiny_dataset)
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_model(tmp_path / "absent.npz", tiny_dataset)


def test_a_model_of_a_task_not_registered_here_says_so(saved, monkeypatch):
    def unknown(name, **options):
        raise ValueError(f"unknown dataset {name!r}; known datasets: ['Books-20core']")

    monkeypatch.setattr(export, "load_dataset", unknown)
    with pytest.raises(ValueError, match=r"model.npz was trained on 'tiny', not a task here"):
        load_model(saved)


def test_the_rebuilt_module_gives_the_stored_representations(final):
    state = torch.random.get_rng_state()
    module = final.to_module()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not module.training
    with torch.no_grad():
        users, items = module()
    assert torch.equal(users, torch.tensor(final.user_repr))
    assert torch.equal(items, torch.tensor(final.item_repr))


def brute_force(final, dataset, seen_pairs, k):
    scores = final.user_repr @ final.item_repr.T
    scores[seen_pairs[:, 0], seen_pairs[:, 1]] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k], scores


def test_recommend_leaves_out_every_known_interaction_and_is_the_exact_top_k(
    final, tiny_dataset, monkeypatch
):
    data = tiny_dataset
    everything = np.concatenate([data.train, data.val, data.test])
    found = final.recommend(k=5)
    assert len(found) == data.n_users and found.items.shape == (data.n_users, 5)
    known = {(int(u), int(i)) for u, i in everything}
    assert not any((u, int(i)) in known for u in range(data.n_users) for i in found.items[u])
    expected, scores = brute_force(final, data, everything, 5)
    assert np.array_equal(found.items, expected)
    assert np.allclose(found.scores, np.take_along_axis(scores, expected, 1), atol=1e-5)
    assert list(found.titles[0]) == [f"Book {i}" for i in found.items[0]]
    assert list(found.item_ids[0]) == [data.item_isbn[i] for i in found.items[0]]
    only_train, _ = brute_force(final, data, data.train, 5)
    assert np.array_equal(final.recommend(k=5, exclude="train").items, only_train)
    monkeypatch.setattr(export, "SCORE_CELLS", 7 * data.n_items)  # chunks of 7 users
    assert np.array_equal(final.recommend(k=5).items, expected)
    ranking = final.recommend(3, k=2).ranking(0)
    assert [r["rank"] for r in ranking] == [1, 2] and ranking[0]["item"] == expected[3, 0]


def test_recommend_takes_raw_ids_and_names_an_unknown_one(final, tiny_dataset):
    by_int, by_text = final.recommend([3, 7], k=4), final.recommend(["3", "7"], k=4)
    assert np.array_equal(by_int.items, by_text.items) and list(by_int.users) == [3, 7]
    with pytest.raises(UnknownUserError, match=r"unknown user '4000': tiny has 40 users"):
        final.recommend(4000)
    with pytest.raises(KeyError):
        final.recommend(["1", "nobody"])
    with pytest.raises(ValueError, match=r"k must be in \[1, 30\]"):
        final.recommend(1, k=31)
    with pytest.raises(ValueError, match="unknown exclude"):
        final.recommend(1, exclude="seen")  # type: ignore[arg-type]
    # more items asked for than are left: the row ends with -1
    full = final.recommend(0, k=30)
    n_known = sum(
        int(u) == 0
        for u, _ in np.concatenate([tiny_dataset.train, tiny_dataset.val, tiny_dataset.test])
    )
    assert (full.items[0] == -1).sum() == n_known and len(full.ranking(0)) == 30 - n_known


# --- the command line ---


@pytest.fixture
def tiny_task(tiny_dataset, monkeypatch, tmp_path):
    """``tiny`` registered as a local task (in a data home of its own), as an import makes one."""
    from nasenv.data import load_dataset
    from nasenv.userdata import register_task

    monkeypatch.setenv("RECNAS_DATA_DIR", str(tmp_path / "home"))
    d = tiny_dataset
    arrays = {
        **{part: np.asarray(getattr(d, part), dtype=np.int32) for part in ("train", "val", "test")},
        **{name: getattr(d, name) for name in ("user_id", "user_country", "item_isbn")},
        **{name: getattr(d, name) for name in ("item_title", "item_author")},
    }
    recipe = {"k": 1, "split": [0.6, 0.2, 0.2], "split_seed": 0}
    info = {"recipe": recipe, "features": {"dim": d.item_text.shape[1]}}
    register_task("tiny", arrays, d.item_text, info)
    return load_dataset("tiny")


def test_recnas_train_then_recommend(tiny_task, tmp_path, capsys):
    from agents import cli

    out = tmp_path / "model.npz"
    argv = ["train", ARCH, "--dataset", "tiny", "--seeds", "2", "--fidelity", "low"]
    cli.main([*argv, "--threads", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "1000 ok" in printed and "1001 ok" in printed and "<- chosen" in printed
    assert f"model written to {out}" in printed
    model = load_model(out, tiny_task)
    assert [r.seed for r in model.results] == [1000, 1001] and model.results[
        0
    ].config.max_epochs == 5

    cli.main(["recommend", str(out), "--user", "3", "-k", "4"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("user 3 on tiny: top 4 of 30 items")
    expected = model.recommend(3, k=4)
    for line, item, title in zip(lines[2:], expected.item_ids[0], expected.titles[0], strict=True):
        assert item in line and line.endswith(title)
    cli.main(["recommend", str(out), "--user", "3", "-k", "4", "--json"])
    record = json.loads(capsys.readouterr().out)
    assert [r["item_id"] for r in record["items"]] == list(expected.item_ids[0])


def test_recnas_train_and_recommend_refuse_bad_input_in_one_line(
    tiny_task, tmp_path, capsys, monkeypatch
):
    from agents import cli

    final = train_final(ARCH, tiny_task, (1000,), CONFIG, progress=False, k=5)
    saved = final.save(tmp_path / "model.npz")
    bad = [
        (["train", "layers=foo", "--dataset", "tiny", "--out", "m.npz"], 2, "layers"),
        (["train", ARCH, "--dataset", "nope", "--out", "m.npz"], 2, "unknown dataset 'nope'"),
        (["train", ARCH, "--dataset", "tiny", "--out", str(tmp_path)], 2, "a directory"),
        (["train", ARCH, "--seeds", "0", "--out", "m.npz"], 2, "must be >= 1"),
        (["train", ARCH, "--dataset", "tiny"], 2, "--out"),
        (["recommend", str(saved), "--user", "nobody"], 2, "unknown user 'nobody': tiny has 40"),
        (["recommend", str(saved), "--user", "1", "-k", "0"], 2, "must be >= 1"),
        (["recommend", str(saved), "--user", "1", "-k", "31"], 2, "k must be in [1, 30]"),
        (["recommend", str(tmp_path / "absent.npz"), "--user", "1"], 1, "no model file"),
    ]
    (tmp_path / "junk.npz").write_text("junk")
    bad.append((["recommend", str(tmp_path / "junk.npz"), "--user", "1"], 1, "junk.npz is not"))
    for argv, status, expected in bad:
        code, err = run_in_process(cli.main, argv, capsys)
        line = one_line(err)
        assert code == status, (argv, err)
        assert line.startswith(f"recnas {argv[0]}: error: ") and expected in line, line
    tampered = dataclasses.replace(tiny_task, sha256="f" * 64)
    monkeypatch.setattr(export, "load_dataset", lambda name, **options: tampered)
    code, err = run_in_process(cli.main, ["recommend", str(saved), "--user", "1"], capsys)
    assert code == 1 and "f" * 64 in one_line(err) and tiny_task.sha256 in one_line(err)


def test_recnas_search_export_trains_the_best_for_real(tiny_task, tmp_path, monkeypatch, capsys):
    from agents import cli
    from nasenv.env import RecNASEnv
    from nasenv.testing import TINY_SPACE, PlantedEvaluator

    class TinyPlanted(PlantedEvaluator):
        dataset_name = "tiny"  # type: ignore[assignment]

    target = TINY_SPACE[5]
    monkeypatch.setattr(
        cli.gym,
        "make",
        lambda env_id, **kw: RecNASEnv(evaluator=TinyPlanted(target), space=TINY_SPACE),
    )
    from nasenv.results import FIDELITIES

    monkeypatch.setitem(FIDELITIES, "converged", TrainConfig(max_epochs=3, patience=2))
    out, history = tmp_path / "best.npz", tmp_path / "run.json"
    argv = ["search", "--agent", "random", "--budget", "10", "--out", str(history)]
    cli.main([*argv, "--export", str(out)])
    captured = capsys.readouterr()
    assert "training the final model of the best architecture for real" in captured.err
    model = load_model(out, tiny_task)
    assert [r.seed for r in model.results] == [1000, 1001, 1002]
    assert model.arch.to_string() == json.loads(history.read_text())["best"]["arch"]
    assert all(r.config.max_epochs == 3 for r in model.results)
