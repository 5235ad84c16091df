import numpy as np
import pytest

from nasenv.space import (
    CORE,
    FULL,
    MAX_LAYERS,
    NO_AGGR,
    SLOTS,
    STOP,
    Architecture,
)


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
    for choice, ok in zip(SLOTS[len(prefix)].choices, space.mask(prefix)):
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
        allowed = {c for c, ok in zip(slot.choices, mask) if ok}
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
    for space in (FULL, CORE):
        for _ in range(300):
            values = space.sample(rng).decisions()
            for slot in range(len(SLOTS)):
                prefix = values[:slot]
                expected = [
                    c in space.allowed[slot] and _rule_allows(slot, c, prefix)
                    for c in SLOTS[slot].choices
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
