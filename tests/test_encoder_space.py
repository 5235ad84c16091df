"""The version 1 space: the item text encoder as a searched decision (issue 20)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import nasenv
from agents import AGENTS, TRANSFER_AGENTS, make_agent, unavailable
from agents.runner import Budget, run_search
from nasenv.data import adapt_seconds, adapted_encoders, adapted_provenance, load_dataset
from nasenv.env import RecNASEnv
from nasenv.evaluators import TableEvaluator
from nasenv.space import (
    CORE,
    CORE_V1,
    ENCODER_SLOTS,
    ENCODERS,
    FULL,
    FULL_V1,
    SLOTS,
    Architecture,
)
from nasenv.testing import PlantedEvaluator
from tests.v0_answers import v0_answers

V0_ANSWERS = "5cfc7b6ee418c92d05e88b8d5205233c21be38c2e51d7960cb111c39214492cb"
"""``python tests/v0_answers.py`` on the code before the encoder decision existed (the commit
before it, with today's ``tests/v0_answers.py``; the same under ``OPENBLAS_CORETYPE=Haswell``
and ``SkylakeX``)."""

LIGHTGCN_TEXT = Architecture.from_string(
    "layers=lgconv-lgconv-lgconv,combine=mean,dim=64,items=id+text,loss=bpr,lr=0.02,reg=0.0001"
)


def test_the_version_0_spaces_and_ids_answer_exactly_as_before():
    assert v0_answers() == V0_ANSWERS


def test_the_encoder_slot_follows_items_and_only_text_items_open_it():
    assert [s.name for s in ENCODER_SLOTS] == [
        *(s.name for s in SLOTS[:9]),
        "encoder",
        *(s.name for s in SLOTS[9:]),
    ]
    assert ENCODER_SLOTS[9].choices == ENCODERS == ("frozen", "finetuned", "lora")
    prefix = list(CORE_V1.decisions(LIGHTGCN_TEXT))[:8]
    assert CORE_V1.mask([*prefix, "id"]).tolist() == [True, False, False]
    for items in ("text", "id+text"):
        assert CORE_V1.mask([*prefix, items]).tolist() == [True, True, True]


def test_core_v1_is_core_plus_every_text_architecture_with_each_adapted_encoder():
    frozen = [arch for arch in CORE_V1 if arch.encoder == "frozen"]
    assert {a.to_string() for a in frozen} == {a.to_string() for a in CORE}
    text = [arch for arch in CORE if arch.items != "id"]
    assert len(CORE_V1) == len(CORE) + 2 * len(text) == 1652
    full_text = sum(1 for i in range(0, len(FULL), 97) if FULL[i].items != "id")
    assert len(FULL_V1) - len(FULL) == pytest.approx(2 * full_text * 97, rel=0.01)
    assert CORE_V1.completions([]) == len(CORE_V1)
    rng = np.random.default_rng(0)
    for space in (CORE_V1, FULL_V1):
        for index in rng.integers(len(space), size=300):
            arch = space[int(index)]
            assert space.index(arch) == index
            assert Architecture.from_string(arch.to_string()) == arch
            assert space.from_decisions(space.decisions(arch)) == arch


def test_a_frozen_architecture_keeps_its_version_0_string_and_hash():
    lora = Architecture(**{**LIGHTGCN_TEXT.__dict__, "encoder": "lora"})
    assert LIGHTGCN_TEXT.encoder == "frozen" and "encoder" not in LIGHTGCN_TEXT.to_string()
    assert lora.to_string() == LIGHTGCN_TEXT.to_string() + ",encoder=lora"
    assert lora.hash != LIGHTGCN_TEXT.hash
    assert Architecture.from_string(LIGHTGCN_TEXT.to_string() + ",encoder=frozen") == LIGHTGCN_TEXT
    assert LIGHTGCN_TEXT in CORE and LIGHTGCN_TEXT in CORE_V1
    assert lora in CORE_V1 and lora not in CORE and lora not in FULL


def test_an_adapted_encoder_is_refused_where_it_means_nothing_or_has_no_slot():
    with pytest.raises(ValueError, match=r"encoder='lora' is not allowed in the full-v1 space"):
        Architecture(**{**CORE[0].__dict__, "encoder": "lora"})  # items=id
    with pytest.raises(ValueError, match=r"encoder='bert' is not one of \['frozen'"):
        Architecture(**{**LIGHTGCN_TEXT.__dict__, "encoder": "bert"})
    lora = Architecture(**{**LIGHTGCN_TEXT.__dict__, "encoder": "lora"})
    with pytest.raises(ValueError, match="a decision of the version 1 slots only"):
        lora.decisions()
    with pytest.raises(ValueError, match="version 1 slots only"):
        CORE.index(lora)
    with pytest.raises(ValueError, match="expected 13 decisions, got 12"):
        Architecture.from_decisions(LIGHTGCN_TEXT.decisions(), ENCODER_SLOTS)


def test_a_task_keeps_the_encoders_it_ships():
    assert adapted_encoders("Books-Canada-5core") == ["frozen", "finetuned", "lora"]
    assert adapted_encoders("Books-10core") == ["frozen"]
    only_frozen = CORE_V1.with_encoders(["frozen"])
    assert len(only_frozen) == len(CORE) and only_frozen.name == "core-v1-frozen"
    assert CORE_V1.with_encoders(ENCODERS) is CORE_V1
    assert CORE.with_encoders(["frozen"]) is CORE
    assert CORE_V1.id_only().slot_choices("encoder") == ["frozen"]


def _live(dataset: str, **kwargs) -> RecNASEnv:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Gymnasium's note that v1 is newer than Live-v0
        env = gym.make("RecNAS-Books-Live-v1", dataset=dataset, cache=None, **kwargs)
    return env


def test_live_v1_episodes_have_13_decisions_and_its_spaces_are_registered():
    env = _live("Books-Canada-5core")
    assert env.spec.max_episode_steps == 13
    assert env.observation_space.shape == (69,)
    assert env.unwrapped.space is CORE_V1
    assert _live("Books-10core").unwrapped.space.name == "core-v1-frozen"
    assert "RecNAS-Books-Live-v1" in nasenv.ENV_IDS


def test_the_adaptation_cost_comes_from_the_shipped_provenance():
    record = adapted_provenance()["books-canada-5core-text-lora.npz"]
    assert adapt_seconds("Books-Canada-5core", "lora") == record["adapt_seconds"] > 0
    assert adapt_seconds("Books-Canada-5core", "frozen") == 0.0
    with pytest.raises(FileNotFoundError, match=r"adapt_encoder\.py --dataset Books-10core"):
        adapt_seconds("Books-10core", "finetuned")


def test_the_table_and_the_surrogate_refuse_the_adapted_encoders():
    with pytest.raises(FileNotFoundError, match=r"no table books-20core-core-v1\.npz"):
        RecNASEnv(backend="table", space="core-v1")  # its table is not built yet
    with pytest.raises(ValueError, match=r"holds the 'core' space, not 'core-v1'"):
        RecNASEnv(evaluator=TableEvaluator("Books-20core"), space="core-v1")
    with pytest.raises(ValueError, match="fitted on frozen-encoder trainings only"):
        RecNASEnv(backend="surrogate", space="full-v1")


def test_live_training_of_an_adapted_encoder_uses_its_features_and_cache_key(monkeypatch):
    from nasenv.evaluators import LiveEvaluator
    from nasenv.train import TrainingContext

    dataset = load_dataset("Books-Canada-5core")
    lora = load_dataset("Books-Canada-5core", encoder="lora")
    context = TrainingContext(dataset)
    assert np.array_equal(context.item_features("lora").numpy(), lora.item_text)
    assert context.item_features("frozen") is context.item_text
    evaluator = LiveEvaluator(dataset, "low", cache=None)
    arch = Architecture(**{**LIGHTGCN_TEXT.__dict__, "encoder": "lora"})
    assert evaluator.cache_key(arch, 0).dataset == lora.sha256 != dataset.sha256
    assert evaluator.cache_key(LIGHTGCN_TEXT, 0).dataset == dataset.sha256


def test_an_episode_ends_with_the_adaptation_cost_in_info():
    env = RecNASEnv(evaluator=PlantedEvaluator(), space="core-v1")
    arch = Architecture(**{**LIGHTGCN_TEXT.__dict__, "encoder": "finetuned"})
    env.reset(seed=0)
    for slot, value in zip(env.space.slots, env.space.decisions(arch), strict=True):
        _, _, terminated, _, info = env.step(slot.choices.index(value))
    assert terminated and info["arch"] == arch.to_string()
    assert info["full_index"] == FULL_V1.index(arch)
    assert info["adapt_seconds"] == 0.0  # a dataset built in code has nothing to adapt
    assert env.adapt_seconds("frozen") == 0.0


@pytest.mark.parametrize("name", [n for n in AGENTS if n not in TRANSFER_AGENTS])
def test_every_agent_searches_the_version_1_space(name):
    if unavailable(name):
        pytest.skip(unavailable(name))
    target = Architecture(**{**LIGHTGCN_TEXT.__dict__, "encoder": "lora"})
    env = RecNASEnv(evaluator=PlantedEvaluator(target), space="core-v1")
    result = run_search(make_agent(name, seed=0), env, Budget(evaluations=40))
    archs = [Architecture.from_string(trial.arch) for trial in result.history]
    assert all(arch in CORE_V1 for arch in archs)
    assert len({arch.encoder for arch in archs}) >= 2  # the encoder is searched


@pytest.mark.parametrize("task", ["Books-Canada-5core", "Books-Europe-5core"])
def test_the_core_v1_table_answers_the_frozen_architectures_as_the_core_table(task):
    from nasenv.table import load_table

    core = load_table(task)
    table = load_table(task, space="core-v1")
    assert len(table) == len(CORE_V1) and table.space_name == "core-v1"
    assert table.seeds == core.seeds and table.cost_version == core.cost_version
    for arch in CORE:
        for seed in core.seeds:
            assert table.query(arch, seed) == core.query(arch, seed)
            assert table.test_metrics(arch, seed) == core.test_metrics(arch, seed)
    env = RecNASEnv(dataset=task, backend="table", space="core-v1", seed_policy="random")
    lora = Architecture(**{**LIGHTGCN_TEXT.__dict__, "encoder": "lora"})
    env.reset(seed=0)
    for slot, value in zip(env.space.slots, env.space.decisions(lora), strict=True):
        _, reward, terminated, _, info = env.step(slot.choices.index(value))
    assert terminated and info["source"] == "table" and info["arch"] == lora.to_string()
    assert reward == table.query(lora, info["seed"]).val_recall
    assert info["adapt_seconds"] == adapt_seconds(task, "lora")
