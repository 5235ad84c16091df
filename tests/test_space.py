import dataclasses
import hashlib

import numpy as np
import pytest

from nasenv.space import (
    CORE,
    CORE_V1,
    FULL,
    FULL_V1,
    MAX_LAYERS,
    NO_AGGR,
    SLOTS,
    STOP,
    Architecture,
    SearchSpace,
)

BASE = {
    "layers": ("lgconv", "sage"),
    "aggrs": ("none", "mean"),
    "combine": "concat",
    "dim": 64,
    "items": "id",
    "loss": "bpr",
    "lr": 0.02,
    "reg": 1e-4,
}
"""Fields of ``layers=lgconv-sage:mean,combine=concat,dim=64,items=id,loss=bpr,lr=0.02,
reg=0.0001``, a core architecture."""
VALID = "layers=gcn,combine=last,dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001"


def test_space_sizes():
    stacks = sum(3**depth for depth in range(1, 4))  # lgconv, gcn, sage:mean at depths 1..3
    assert len(CORE) == (1 + 3 * stacks) * 3 * 2  # combine; items x loss
    assert len(FULL) > 100 * len(CORE)


def test_core_has_no_duplicates_and_round_trips():
    archs = list(CORE)
    assert len({a.to_string() for a in archs}) == len(archs)
    assert len({a.hash for a in archs}) == len(archs)
    for i, arch in enumerate(archs):
        assert CORE.index(arch) == i
        assert Architecture.from_string(arch.to_string()) == arch
        assert arch in FULL
        assert FULL[FULL.index(arch)] == arch


def test_full_space_round_trips_random_architectures():
    rng = np.random.default_rng(0)
    for _ in range(500):
        arch = FULL.sample(rng)
        assert FULL[FULL.index(arch)] == arch
        assert Architecture.from_string(str(arch)) == arch
        assert Architecture.from_decisions(arch.decisions()) == arch


def _walk(space, prefix=()):
    """Every reachable prefix of the space, depth first."""
    yield prefix
    if len(prefix) == len(SLOTS):
        return
    for choice, ok in zip(SLOTS[len(prefix)].choices, space.mask(prefix), strict=True):
        if ok:
            yield from _walk(space, (*prefix, choice))


def test_masks_follow_the_rules_for_every_reachable_core_prefix():
    complete = 0
    for prefix in _walk(CORE):
        if len(prefix) == len(SLOTS):
            complete += 1
            continue
        mask = CORE.mask(prefix)
        assert mask.any(), f"dead end after {prefix}"
        slot = SLOTS[len(prefix)]
        allowed = {c for c, ok in zip(slot.choices, mask, strict=True) if ok}
        if slot.name.startswith("layer") and slot.name != "layer1" and prefix[-2] == STOP:
            assert allowed == {STOP}
        if slot.name.startswith("aggr"):
            assert (allowed == {NO_AGGR}) == (prefix[-1] != "sage")
        if slot.name == "combine" and prefix[0] == STOP:
            assert allowed == {"last"}
    assert complete == len(CORE)


def test_depth_and_mf():
    mf = CORE[0]
    assert mf.depth == 0 and mf.layers == ()
    assert str(mf).startswith("layers=none,combine=last")
    deepest = max(CORE, key=lambda a: a.depth)
    assert deepest.depth == MAX_LAYERS


def test_invalid_architectures_are_refused_with_reasons():
    with pytest.raises(ValueError, match="combine='mean' is not allowed"):
        Architecture.from_string(
            "layers=none,combine=mean,dim=64,items=id,loss=bpr,lr=0.01,reg=0.0001"
        )
    with pytest.raises(ValueError, match="aggr1"):
        Architecture.from_string(
            "layers=gcn:mean,combine=last,dim=64,items=id,loss=bpr,lr=0.01,reg=0"
        )
    with pytest.raises(ValueError, match=r"lr='0\.5' is not one of"):
        Architecture.from_string("layers=gcn,combine=last,dim=64,items=id,loss=bpr,lr=0.5,reg=0")
    with pytest.raises(ValueError, match="exactly the keys"):
        Architecture.from_string("layers=gcn,combine=last")
    outside_core = Architecture.from_string(
        "layers=gat,combine=last,dim=64,items=id,loss=bpr,lr=0.01,reg=0.0001"
    )
    assert outside_core in FULL and outside_core not in CORE
    with pytest.raises(ValueError, match="not allowed in the core space"):
        CORE.index(outside_core)
    with pytest.raises(IndexError):
        CORE[len(CORE)]


def test_hash_is_stable():
    arch = Architecture.from_string(
        "layers=lgconv-lgconv-lgconv,combine=mean,dim=64,items=id,loss=bpr,lr=0.01,reg=0.0001"
    )
    # pinned: a change of canonical string or hash would orphan every stored result
    assert arch.hash == "dce73581ab5827fd"
    assert (
        str(arch)
        == "layers=lgconv-lgconv-lgconv,combine=mean,dim=64,items=id,loss=bpr,lr=0.01,reg=0.0001"
    )


def test_cached_masks_equal_the_rules_applied_to_the_whole_prefix():
    from nasenv.space import _rule_allows

    rng = np.random.default_rng(7)
    for space in (FULL, CORE, FULL_V1, CORE_V1):
        for _ in range(300):
            values = space.decisions(space.sample(rng))
            for slot in range(len(space.slots)):
                prefix = values[:slot]
                expected = [
                    c in space.allowed[slot] and _rule_allows(slot, c, prefix, space.slots)
                    for c in space.slots[slot].choices
                ]
                assert space.mask(prefix).tolist() == expected


def test_completions_count_the_architectures_below_every_prefix():
    from collections import Counter

    for space in (CORE, FULL):
        assert space.completions([]) == len(space)
    below = Counter(prefix for arch in CORE for prefix in _prefixes(arch.decisions()))
    for prefix, count in below.items():
        assert CORE.completions(list(prefix)) == count, prefix


def _prefixes(values: tuple) -> list[tuple]:
    return [values[:end] for end in range(len(values) + 1)]


def test_every_canonical_string_and_hash_is_unchanged():
    # pinned digests of "<string> <hash>" lines: every core architecture, and every 7919th of
    # the full space; a change would orphan the shipped tables, surrogates and caches
    for space, step, expected in ((CORE, 1, "111e2c28f99e6bbd"), (FULL, 7919, "5806b91d307a531f")):
        lines = "\n".join(f"{space[i]} {space[i].hash}" for i in range(0, len(space), step))
        assert hashlib.sha256(lines.encode()).hexdigest()[:16] == expected, space.name


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"layers": ("gcn",), "aggrs": ()}, ValueError, r"differ in length: give one aggregator"),
        ({"layers": ("gcn",) * 4, "aggrs": ("none",) * 4}, ValueError, r"4 layers; at most 3"),
        (
            {"layers": ("gcn", STOP), "aggrs": ("none", "none")},
            ValueError,
            r"holds 'stop'.*allowed layers: \['lgconv', 'gcn', 'sage', 'gin', 'gat'\]",
        ),
        ({"layers": ("mlp",), "aggrs": ("none",)}, ValueError, r"layer1='mlp' is not one of"),
        (
            {"layers": ("gcn",), "aggrs": ("mean",)},
            ValueError,
            r"aggr1='mean' is not allowed in the full space.*allowed: \['none'\]",
        ),
        (
            {"layers": ("sage",), "aggrs": ("none",)},
            ValueError,
            r"aggr1='none' is not allowed .*allowed: \['mean', 'max', 'sum'\]",
        ),
        (
            {"layers": (), "aggrs": (), "combine": "mean"},
            ValueError,
            r"combine='mean' is not allowed in the full space.*allowed: \['last'\]",
        ),
        ({"combine": "max"}, ValueError, r"combine='max' is not one of"),
        ({"dim": 48}, ValueError, r"dim=48 is not one of \[16, 32, 64, 128\]"),
        ({"items": "bert"}, ValueError, r"items='bert' is not one of"),
        ({"loss": "mse"}, ValueError, r"loss='mse' is not one of"),
        ({"lr": 1e30}, ValueError, r"lr=1e\+30 is not one of \[0\.005, 0\.01, 0\.02, 0\.05\]"),
        ({"reg": -1e-4}, ValueError, r"reg=-0\.0001 is not one of"),
        ({"layers": ["gcn"], "aggrs": ["none"]}, TypeError, r"layers must be a tuple"),
        ({"aggrs": "none"}, TypeError, r"aggrs must be a tuple"),
        ({"dim": 64.0}, TypeError, r"dim must be an int, got 64\.0"),
        ({"dim": True}, TypeError, r"dim must be an int"),
        ({"lr": "0.02"}, TypeError, r"lr must be a float, got '0\.02'"),
        ({"reg": False}, TypeError, r"reg must be a float"),
        ({"reg": None}, TypeError, r"reg must be a float"),
    ],
)
def test_construction_refuses_what_the_full_space_does_not_hold(change, error, match):
    with pytest.raises(error, match=match):
        Architecture(**{**BASE, **change})
    valid = Architecture(**BASE)
    with pytest.raises(error, match=match):
        dataclasses.replace(valid, **change)


def test_int_and_numpy_numbers_are_stored_as_the_equal_python_number():
    arch = Architecture(**BASE)
    assert (
        str(arch)
        == "layers=lgconv-sage:mean,combine=concat,dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001"
    )
    mf = Architecture((), (), "last", np.int64(16), "id", "bpr", np.float64(0.005), 0)
    assert (type(mf.dim), type(mf.lr), type(mf.reg)) == (int, float, float)
    assert mf == FULL[0] and mf.hash == FULL[0].hash and str(mf) == str(FULL[0])
    assert mf in FULL and hash(mf) == hash(FULL[0])


def test_every_construction_path_gives_equal_canonically_typed_architectures():
    rng = np.random.default_rng(3)
    for arch in [*(FULL.sample(rng) for _ in range(200)), *CORE]:
        checked = Architecture(**dataclasses.asdict(arch))
        assert checked == arch and checked.hash == arch.hash
        for a in (arch, checked):
            assert type(a.layers) is tuple and type(a.aggrs) is tuple
            assert (type(a.dim), type(a.lr), type(a.reg)) == (int, float, float)


def test_from_decisions_validates_once(monkeypatch):
    arch = CORE[100]
    calls, values = [], arch.decisions()
    original = SearchSpace.validate_values

    def counting(self, values):
        calls.append(self.name)
        return original(self, values)

    monkeypatch.setattr(SearchSpace, "validate_values", counting)
    assert Architecture.from_decisions(values) == arch
    assert calls == ["full"]


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ((*CORE[0].decisions()[:-1], False), r"reg=False is not one of"),
        ((*CORE[0].decisions()[:-1], "0.0001"), r"reg='0\.0001' is not one of"),
        (CORE[0].decisions()[:-1], r"expected 12 decisions, got 11"),
        (("gcn", "none", STOP, "none", "gcn", "none", *CORE[0].decisions()[6:]), r"layer3='gcn'"),
    ],
)
def test_from_decisions_refuses_invalid_sequences(values, match):
    with pytest.raises(ValueError, match=match):
        Architecture.from_decisions(values)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (VALID.replace("layers=gcn", "layers=gcn-gcn-gcn-gcn"), r"has 4 layers; at most 3"),
        (VALID + ",dim=32", r"gives 'dim' twice \(dim='64' and dim='32'\)"),
        (VALID.replace("layers=gcn", "layers=stop"), r"layer 1 of layers='stop' is 'stop'"),
        (VALID.replace("layers=gcn", "layers=gcn-stop"), r"layer 2 .* is 'stop'.*layers=none"),
        (VALID.replace("layers=gcn", "layers=gcn:none"), r"is 'gcn:none'.*'sage:mean'"),
        (VALID.replace("layers=gcn", "layers=gcn--gcn"), r"layer 2 .* is ''"),
        (VALID.replace("layers=gcn", "layers="), r"layer 1 .* is ''"),
        (VALID.replace("layers=gcn", "layers=none-gcn"), r"layer 1 .* is 'none'"),
        (VALID.replace("layers=gcn", "layers=sage"), r"aggr1='none' is not allowed in the full"),
        (VALID.replace("layers=gcn", "layers=gcn:mean"), r"aggr1='mean' is not allowed"),
        (VALID.replace(",reg=0.0001", ""), r"exactly the keys.*missing: \['reg'\], unknown: \[\]"),
        (VALID.replace("loss=", "los="), r"missing: \['loss'\], unknown: \['los'\]"),
        (VALID.replace(",dim=64", ",dim"), r"'dim' is not a key=value pair"),
        ("", r"'' is not a key=value pair"),
        (VALID.replace("dim=64", "dim=64.0"), r"dim='64\.0' is not one of"),
    ],
)
def test_from_string_refuses_malformed_text_naming_the_fault(text, match):
    with pytest.raises(ValueError, match=match):
        Architecture.from_string(text)


def test_from_string_accepts_any_key_order_and_number_spelling_but_one_meaning():
    canonical = Architecture.from_string(VALID)
    reordered = "reg=1e-4,lr=2e-2,loss=bpr,items=id,dim=64,combine=last,layers=gcn"
    assert Architecture.from_string(reordered) == canonical
    assert str(Architecture.from_string(reordered)) == VALID
    with pytest.raises(TypeError, match="expected an architecture string"):
        Architecture.from_string(VALID.encode())  # type: ignore[arg-type]


def test_spaces_refuse_what_is_not_an_architecture_or_an_index():
    with pytest.raises(TypeError, match="the core space holds Architecture objects, not str"):
        assert VALID in CORE
    with pytest.raises(TypeError, match="expected an Architecture"):
        CORE.index(VALID)  # type: ignore[arg-type]
    for index in (1.0, "1", True):
        with pytest.raises(TypeError, match="indexed by int"):
            CORE[index]  # type: ignore[index]
    assert CORE[np.int64(5)] == CORE[5]
    with pytest.raises(IndexError, match="outside the core space"):
        CORE[-1]
    with pytest.raises(ValueError, match="13 decisions, more than the 12 slots"):
        FULL.validate_values((*CORE[0].decisions(), "x"))
