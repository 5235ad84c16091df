"""The shipped files that published env ids answer from are pinned: changing one changes what an
id answers, so a refit or a table with more seeds ships as a new file under a new, documented
version (Gymnasium's convention), as ``books-20core-surrogate-v1.npz`` did."""

from __future__ import annotations

from nasenv.data import read_checksums
from nasenv.table import TABLE_DIR, load_table

PUBLISHED = {
    "books-20core.npz": "34c2f8d9894696fb1b9f9458dc5cc09473141dcb5a4c7e389cd0a59e7a3bb5bc",
    "books-10core.npz": "e69bab78ca0c53df39c7a3654458761ab33694b9ae1176a3dbd40b588d2507ca",
    "books-usa-20core.npz": "0d9f050ee58b987049c939a8e68891a9e92a4e72a9aa89ef7e96d9fbe173fa29",
    "books-canada-5core.npz": "edb5b4cb32549f91c414fa303c8d77d24346ebe973fef48af59f26fd7f968c02",
    "books-europe-5core.npz": "75709e229b45177a3a4b255687f4b1afa6f14b4218257bc5e08fef4d8f85aa02",
    "books-canada-5core-core-v1.npz": (
        "97e3b4b69fe1d7981492200c3a8d991989f59d1cfd9d3b3388ed9dc58ad96bd0"
    ),
    "books-europe-5core-core-v1.npz": (
        "4fafd459b9d2f124e1b86ebd78d8701507705546ef5dcb71ca113c9ecce07333"
    ),
    "books-20core-r1.npz": "1c74edfdd3cfa1f25ba952eb18077783a14436e36a2e7f942d97d3bd1995c8d4",
    "books-usa-20core-r1.npz": "dcb423e0193e9555b6dd28677315a33c596cc0c8efd651d2a66d0f112e1cb2a4",
    "books-20core-surrogate.npz": (
        "f181a56cbff4d4ac54785919a547a0cfe4414fc3a2cbe58b9133f411f4421ece"
    ),
    "books-20core-surrogate-v1.npz": (
        "58ee00ace77db3df37f0ac6ec794e9e8000203e06f30967ed517e8dd20bc3dbd"
    ),
    "books-20core-surrogate-v2.npz": (
        "7a376fc12038b5b10b531995f1a3e54667defd2a86468447fa605edf17441878"
    ),
    "books-20core-surrogate-v3.npz": (
        "7ec48b4f40e0d54274911313c48f3c55bbb0144b32cf8eecbfb06c540abbe963"
    ),
}


def test_every_published_file_is_shipped_unchanged():
    sums = read_checksums(TABLE_DIR)
    changed = {name for name, sha in PUBLISHED.items() if sums.get(name) != sha}
    assert not changed, (
        f"{sorted(changed)} changed: published env ids answer from them; ship the new contents "
        "as a new file under a new, documented version and keep these"
    )


def test_the_tables_hold_the_seeds_their_ids_draw_from():
    seeds = {
        "Books-20core": [0, 1, 2],
        "Books-10core": [0],
        "Books-USA-20core": [0],
        "Books-Canada-5core": [0, 1, 2],
        "Books-Europe-5core": [0, 1, 2],
    }
    for task, expected in seeds.items():
        assert list(load_table(task).seeds) == expected, task


def test_each_surrogate_version_names_the_builds_it_was_fitted_on():
    from pathlib import Path

    from nasenv.surrogate import SURROGATE_VERSIONS, VERSION_BUILDS, load_surrogate
    from nasenv.tablebuild import ShardStore, finished_trainings

    builds = Path(__file__).resolve().parent.parent / "benchmarks" / "table-build"
    assert set(VERSION_BUILDS) == set(SURROGATE_VERSIONS)
    for version, names in VERSION_BUILDS.items():
        for name in names:
            plan = ShardStore.open(builds / name).plan
            assert (plan.dataset, plan.space, plan.exclude) == ("Books-20core", "full", "core")
        if version >= 1:  # version 0's second-seed build has grown since its fit
            fitted_on = load_surrogate("Books-20core", version=version).meta["extra"]
            assert len(finished_trainings([builds / name for name in names])) == fitted_on
