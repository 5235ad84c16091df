"""The table as an HPOBench-style objective."""

from __future__ import annotations

import pytest

from nasenv.adapters import HPOBenchObjective
from nasenv.space import CORE, CORE_V1, ENCODER_SLOTS, SLOTS
from nasenv.table import UnknownArchitectureError, load_table


def config_of(index: int) -> dict:
    return dict(zip((s.name for s in SLOTS), CORE[index].decisions(), strict=True))


def test_the_objective_answers_what_the_table_stores():
    table = load_table("Books-20core")
    objective = HPOBenchObjective(table)
    for i in (0, 300, 707):
        answer = objective.objective_function(config_of(i))
        record = table.query(CORE[i])
        assert answer["function_value"] == pytest.approx(1 - record.val_recall)
        assert answer["cost"] == pytest.approx(record.cost_seconds)
        assert answer["info"]["cost_version"] == table.cost_version == 1
        low = objective.objective_function(config_of(i), {"epochs": 5, "patience": 2}, seed=1)
        short = table.query(CORE[i], 1, (5, 2))
        assert low["function_value"] == pytest.approx(1 - short.val_recall)
        assert low["cost"] == pytest.approx(short.cost_seconds)
        assert short.cost_seconds <= table.query(CORE[i], 1).cost_seconds
        test = objective.objective_function_test(config_of(i))
        assert test["function_value"] == pytest.approx(
            1 - table.test_metrics(CORE[i])["test_recall"]
        )
    ndcg = HPOBenchObjective(table, metric="ndcg").objective_function(config_of(0))
    assert ndcg["function_value"] == pytest.approx(1 - table.query(CORE[0]).val_ndcg)


def test_spaces_and_bad_input_name_what_is_allowed():
    objective = HPOBenchObjective("Books-20core")
    assert list(objective.get_configuration_space()) == [s.name for s in SLOTS]
    assert objective.get_fidelity_space() == {"epochs": (1, 30), "patience": (1, 5)}
    config = config_of(0)
    with pytest.raises(ValueError, match=r"missing \['reg'\]"):
        objective.objective_function({k: v for k, v in config.items() if k != "reg"})
    with pytest.raises(ValueError, match=r"unknown \['depth'\]"):
        objective.objective_function({**config, "depth": 3})
    with pytest.raises(ValueError, match=r"allowed: \['epochs', 'patience'\]"):
        objective.objective_function(config, {"budget": 3})
    with pytest.raises(ValueError, match="31"):
        objective.objective_function(config, {"epochs": 31})
    with pytest.raises(ValueError, match="allowed"):
        HPOBenchObjective("Books-20core", metric="map")
    outside = {**config, "dim": 16}  # the core space fixes dim at 64
    with pytest.raises(UnknownArchitectureError):
        objective.objective_function(outside)


def test_a_core_v1_table_is_configured_with_the_encoder_slot():
    table = load_table("Books-Canada-5core", space="core-v1")
    objective = HPOBenchObjective(table)
    assert list(objective.get_configuration_space()) == [s.name for s in ENCODER_SLOTS]
    assert objective.get_configuration_space()["encoder"] == ("frozen", "finetuned", "lora")
    for arch in (CORE_V1[0], next(a for a in CORE_V1 if a.encoder == "lora")):
        config = dict(zip((s.name for s in ENCODER_SLOTS), CORE_V1.decisions(arch), strict=True))
        answer = objective.objective_function(config)
        assert answer["function_value"] == pytest.approx(1 - table.query(arch).val_recall)
    with pytest.raises(ValueError, match=r"missing \['encoder'\]"):
        objective.objective_function(config_of(0))  # the 12 version 0 slots are not enough


def test_the_syne_tune_blackbox_answers_every_epoch_as_the_table():
    pytest.importorskip("syne_tune")
    from nasenv.adapters import syne_tune_blackbox

    table = load_table("Books-20core")
    blackbox = syne_tune_blackbox(table)
    for i in (0, 400):
        config = {"arch": table.arch_strings[i], "task": table.dataset}
        for seed in (0, 2):
            answers = blackbox.objective_function(config, seed=seed)  # (epochs, metrics)
            for epoch in (1, 7, 30):
                record = table.query(i, table.seeds[seed], (epoch, table.patience))
                row = answers[epoch - 1]
                assert row[0] == pytest.approx(record.val_recall)
                assert row[2] == pytest.approx(record.cost_seconds)
            assert list(answers[:, 2]) == sorted(answers[:, 2])  # seconds never go back
