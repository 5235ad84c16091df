"""The resumable table builder: journals, sealing, resume after a crash, plan checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasenv.results import TrainResult
from nasenv.tablebuild import BuildPlan, PlanMismatchError, ShardStore, assemble
from tests import fakes


def fake_result(arch: str, seed: int, score: float = 0.05) -> TrainResult:
    return fakes.fake_result(arch, seed, score, seconds=2.0)


PLAN = BuildPlan(seeds=(0, 1), shard_size=100)


def test_plan_is_seed_major_and_sharded():
    tasks = PLAN.tasks()
    assert len(tasks) == 2 * 708
    assert {seed for _, seed in tasks[:708]} == {0}
    assert [len(s) for s in PLAN.shards()] == [100] * 14 + [16]
    with pytest.raises(ValueError, match="allowed"):
        BuildPlan(fidelity="fast")


def test_journal_survives_a_cut_line_and_resume_skips_done_work(tmp_path):
    store = ShardStore(tmp_path, PLAN)
    first = PLAN.tasks()[:5]
    for arch, seed in first:
        store.record(fake_result(arch, seed))
    journal = store.journal_path(0)
    with open(journal, "a") as f:  # a crash in the middle of a write
        f.write('{"arch": "layers=lgc')
    resumed = ShardStore(tmp_path, PLAN)
    assert set(resumed.done()) == set(first)
    assert resumed.pending()[0] == PLAN.tasks()[5]
    assert len(resumed.pending()) == len(PLAN.tasks()) - 5
    arch, seed = PLAN.tasks()[5]
    resumed.record(fake_result(arch, seed))  # appends cleanly after the dropped fragment
    assert len(ShardStore(tmp_path, PLAN).done()) == 6


def test_a_complete_shard_is_sealed_in_plan_order(tmp_path):
    store = ShardStore(tmp_path, PLAN)
    shard = PLAN.shards()[1]
    sealed = [store.record(fake_result(arch, seed)) for arch, seed in reversed(shard)]
    assert sealed == [False] * (len(shard) - 1) + [True]
    assert store.is_sealed(1) and not store.journal_path(1).exists()
    lines = store.sealed_path(1).read_text().splitlines()
    assert [(json.loads(line)["arch"], json.loads(line)["seed"]) for line in lines] == shard
    assert not store.record(fake_result(*shard[0], score=0.9))  # sealed shards never change
    assert ShardStore(tmp_path, PLAN).records(1)[shard[0]]["val_recall"][-1] == 0.05


def test_a_directory_refuses_another_plan(tmp_path):
    ShardStore(tmp_path, PLAN)
    with pytest.raises(PlanMismatchError, match="another plan"):
        ShardStore(tmp_path, BuildPlan(seeds=(0, 1, 2)))


def test_an_existing_build_opens_with_its_stored_plan(tmp_path):
    with pytest.raises(FileNotFoundError, match="no build in"):
        ShardStore.open(tmp_path / "empty")
    ShardStore(tmp_path, PLAN).record(fake_result(PLAN.tasks()[0][0], 0))
    store = ShardStore.open(tmp_path)
    assert store.plan == PLAN and list(store.done()) == [PLAN.tasks()[0]]


def test_assemble_needs_every_training_of_the_requested_seeds(tmp_path):
    store = ShardStore(tmp_path, PLAN)
    for i, (arch, seed) in enumerate(PLAN.tasks()[:708]):
        store.record(fake_result(arch, seed, score=i / 10_000))
    table = assemble(store, seeds=(0,), machine="test")
    assert len(table) == 708 and table.seeds == (0,)
    assert table.meta["fidelity"]["max_epochs"] == 30 and table.meta["build"]["machine"] == "test"
    assert table.top_k(1)[0][1] == pytest.approx(707 / 10_000)
    with pytest.raises(ValueError, match=r"708 .* missing"):
        assemble(store)
    with pytest.raises(ValueError, match="not in the build plan"):
        assemble(store, seeds=(5,))


def _load_script(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _FakeRay:
    """Just enough of Ray's API to drive ``run_ray``: a task runs when its result is fetched."""

    def __init__(self) -> None:
        self.address, self.options = None, {}

    def init(self, address: str) -> None:
        self.address = address

    def remote(self, **options):
        self.options = options

        def decorate(function):
            class Remote:
                def remote(self, *args):
                    return (function, args)

            return Remote()

        return decorate

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        function, args = ref
        return function(*args)


def test_the_ray_driver_records_every_result_it_gets(tmp_path, monkeypatch):
    import sys

    from tqdm import tqdm

    script = _load_script("build_table")
    plan = BuildPlan(seeds=(0,), shard_size=3)
    tasks = plan.tasks()[:6]
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(script, "run_task", lambda d, f, arch, seed, t: fake_result(arch, seed))
    store = ShardStore(tmp_path, plan)
    with tqdm(total=len(tasks), disable=True) as bar:
        errors = script.run_ray(store, tasks, "ray://head:10001", 1, 3, bar)
    assert errors == 0 and fake.address == "ray://head:10001"
    assert fake.options["max_retries"] == 3 and fake.options["retry_exceptions"]
    assert set(store.done()) == set(tasks)
    assert store.is_sealed(0) and store.is_sealed(1)


def test_a_sampled_plan_draws_distinct_architectures_outside_the_excluded_space():
    from nasenv.space import CORE, FULL

    plan = BuildPlan(space="full", sample=50, sample_seed=3, exclude="core", seeds=(0,))
    archs = plan.architectures()
    assert len({a.to_string() for a in archs}) == 50
    assert all(a in FULL and a not in CORE for a in archs)
    assert archs == BuildPlan.from_dict(plan.to_dict()).architectures()
    assert (
        archs != BuildPlan(space="full", sample=50, sample_seed=4, exclude="core").architectures()
    )
    with pytest.raises(ValueError, match="allowed"):
        BuildPlan(exclude="tiny")


def test_a_core_v1_table_joins_the_core_build_with_the_costs_of_its_version(tmp_path):
    from nasenv.space import CORE_V1

    core_plan = BuildPlan(seeds=(0,), cost_version=1)
    v1_plan = BuildPlan(space="core-v1", exclude="core", seeds=(0,))
    assert len(v1_plan.architectures()) == len(CORE_V1) - 708 == 944
    core, v1 = ShardStore(tmp_path / "core", core_plan), ShardStore(tmp_path / "v1", v1_plan)
    for store, plan in ((core, core_plan), (v1, v1_plan)):
        for arch, seed in plan.tasks():
            fields = {"epoch_test_seconds": (0.25, 0.25), "cost_version": 2}
            store.record(fakes.fake_result(arch, seed, 0.05, seconds=2.0, **fields))
    table = assemble(v1, base=core)
    assert len(table) == len(CORE_V1) and table.space_name == "core-v1"
    assert list(table.arch_strings) == [a.to_string() for a in CORE_V1]
    assert table.cost_version == 1  # the core table's: costs compare across the two
    lora = next(a for a in CORE_V1 if a.encoder == "lora")
    assert table.query(lora, 0).cost_seconds == pytest.approx(2.0 + 0.25)
    with pytest.raises(ValueError, match="must be the whole space the build excludes"):
        assemble(v1, base=v1)
    with pytest.raises(ValueError, match="pass that space's build as base"):
        assemble(v1)  # without the core build, the table would have gaps


def test_a_gpu_build_is_its_own_build(tmp_path):
    with pytest.raises(ValueError, match=r"unknown device 'tpu'; allowed: \['cpu', 'cuda'\]"):
        BuildPlan(device="tpu")
    store = ShardStore(tmp_path, PLAN)
    arch, seed = PLAN.tasks()[0]
    with pytest.raises(ValueError, match=r"trained on cuda \(NVIDIA H200\); this build"):
        store.record(fakes.fake_result(arch, seed, device="cuda (NVIDIA H200)"))
    with pytest.raises(PlanMismatchError):
        ShardStore(tmp_path, BuildPlan(seeds=(0, 1), shard_size=100, device="cuda"))
    gpu = ShardStore(tmp_path / "gpu", BuildPlan(seeds=(0,), device="cuda"))
    gpu.record(fakes.fake_result(arch, seed, device="cuda (NVIDIA H200)"))
    assert [r.device for r in gpu.results()] == ["cuda (NVIDIA H200)"]
    stored = json.loads((tmp_path / ShardStore.PLAN_FILE).read_text())
    del stored["device"]  # a plan written before devices were recorded
    assert BuildPlan.from_dict(stored) == PLAN


def test_no_training_starts_after_the_deadline(tmp_path):
    import time

    from tqdm import tqdm

    build_table = _load_script("build_table")
    store = ShardStore(tmp_path, PLAN)
    with tqdm(disable=True) as bar:
        errors = build_table.run_local(store, PLAN.tasks()[:3], 1, 1, bar, time.monotonic())
    assert errors == 0 and len(store.pending()) == len(PLAN.tasks())


def test_status_of_a_build_that_does_not_exist_starts_none(tmp_path, capsys):
    build_table = _load_script("build_table")
    assert build_table.main(["--status", "--out", str(tmp_path / "none")]) == 0
    assert "no build there yet" in capsys.readouterr().out
    assert not (tmp_path / "none").exists()


def test_a_build_directory_alone_resumes_its_stored_plan(tmp_path, capsys):
    build_table = _load_script("build_table")
    plan = BuildPlan(space="full", sample=5, sample_seed=3, exclude="core", seeds=(0,))
    ShardStore(tmp_path, plan)
    assert build_table.main(["--status", "--out", str(tmp_path)]) == 0
    assert f"{tmp_path}: 0/5 trainings done" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"holds another plan.*pass --out .* without the plan's"):
        build_table.main(["--status", "--out", str(tmp_path), "--seeds", "1"])


def test_status_of_every_build_sums_what_is_left(tmp_path, monkeypatch, capsys):
    build_table = _load_script("build_table")
    monkeypatch.setattr(build_table, "BUILDS", tmp_path)
    plan = BuildPlan(seeds=(0,), shard_size=3)
    store = ShardStore(tmp_path / "one", plan)
    ShardStore(tmp_path / "two", plan)
    for arch, seed in plan.tasks()[:2]:
        store.record(fakes.fake_result(arch, seed, seconds=3600.0))
    assert build_table.main(["--status", "--all"]) == 0
    out = capsys.readouterr().out
    assert f"one: 2/{len(plan.tasks())} trainings done" in out and "two: 0/" in out
    left = (len(plan.tasks()) - 2) * 3600 / 3600
    assert f"2 builds; about {left:.1f} core-hours to go in all" in out


CHILD = """
import importlib.util
import os
import time


def init(script, parent):
    if script:  # the build's own initializer, or none
        spec = importlib.util.spec_from_file_location("build_table_under_test", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module._exit_with(parent, every=0.05)


def work(path):
    with open(path, "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(120)
"""
BUILD = """
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import child

script, path = sys.argv[1:]
pool = ProcessPoolExecutor(
    1, mp_context=get_context("spawn"), initializer=child.init, initargs=(script, os.getpid())
)
pool.submit(child.work, path)
while not (os.path.exists(path) and open(path).read()):
    time.sleep(0.05)
os._exit(0)  # killed: its pool is never shut down
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("watched", [True, False])
def test_a_build_worker_ends_when_its_build_is_killed(tmp_path, watched):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    (tmp_path / "child.py").write_text(CHILD)
    script = Path(__file__).resolve().parent.parent / "scripts" / "build_table.py"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    pid_file = tmp_path / "worker.pid"
    arguments = [str(script) if watched else "", str(pid_file)]
    subprocess.run([sys.executable, "-c", BUILD, *arguments], env=env, check=True, timeout=120)
    pid = int(pid_file.read_text())

    def alive() -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return False
        return state != "Z"  # a zombie has exited; only its reaping is left

    deadline = time.monotonic() + (30 if watched else 3)
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if watched:
        assert not alive(), "the orphaned worker kept running"
    else:  # what the initializer is for: an unwatched pool worker outlives its build
        assert alive()
        os.kill(pid, signal.SIGKILL)


def test_builds_of_more_seeds_join_in_one_table_under_the_first_builds_cost_version(tmp_path):
    first_plan, more_plan = BuildPlan(seeds=(0,), cost_version=1), BuildPlan(seeds=(3, 4))
    first = ShardStore(tmp_path / "first", first_plan)
    more = ShardStore(tmp_path / "more", more_plan)
    for store, plan in ((first, first_plan), (more, more_plan)):
        for arch, seed in plan.tasks():
            fields = {"epoch_test_seconds": (0.25, 0.25), "cost_version": 2}
            store.record(fakes.fake_result(arch, seed, 0.05 + seed / 100, seconds=2.0, **fields))
    table = assemble(first, more_seeds=[more])
    assert list(table.seeds) == [0, 3, 4] and table.cost_version == 1
    arch = table.arch_strings[0]
    assert table.query(arch, 4).val_recall == pytest.approx(0.09)
    assert table.query(arch, 3).cost_seconds == pytest.approx(2.0 + 0.25)
    assert list(assemble(first, (0, 4), more_seeds=[more]).seeds) == [0, 4]
    with pytest.raises(ValueError, match=r"seeds \[3, 4\] already in another build"):
        assemble(first, more_seeds=[more, more])
    other = ShardStore(tmp_path / "other", BuildPlan(dataset="Books-10core", seeds=(1,)))
    with pytest.raises(ValueError, match="dataset 'Books-10core'"):
        assemble(first, more_seeds=[other])
    with pytest.raises(ValueError, match=r"seeds \[7\] are not in the build plans'"):
        assemble(first, (7,), more_seeds=[more])
