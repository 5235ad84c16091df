"""Library calls leave process-wide state alone unless the caller asks: global random
generators, torch's thread count, Optuna's log level, the logging configuration."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import nasenv  # noqa: F401 - registers the ids
from agents import AGENTS, REQUIREMENTS, make_agent, unavailable
from agents.base import restored_global_rngs, single_threaded
from agents.runner import Budget, run_search
from nasenv.env import RecNASEnv
from nasenv.evaluators import TableEvaluator
from nasenv.results import TrainConfig
from nasenv.space import Architecture
from nasenv.table import BenchmarkTable
from nasenv.testing import TINY_SPACE
from nasenv.train import train_architecture

TABLE = BenchmarkTable.load(Path(__file__).resolve().parent / "data" / "tiny.npz")
ARCH = Architecture.from_string(
    "layers=lgconv,combine=mean,dim=16,items=id,loss=bpr,lr=0.01,reg=0.0001"
)
QUICK = TrainConfig(max_epochs=2, batch_size=64)


def tiny_env() -> RecNASEnv:
    return RecNASEnv(evaluator=TableEvaluator(TABLE), space=TINY_SPACE, seed_policy="random")


def global_rng_states() -> tuple[object, ...]:
    """Python's, NumPy's and torch's (CPU) global random states, comparable with ``==``."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return (
        random.getstate(),
        (kind, keys.tobytes(), position, has_gauss, gauss),
        torch.get_rng_state().numpy().tobytes(),
    )


@pytest.fixture
def seeded_globals():
    """The global generators seeded to a state of their own (not the one a library would seed
    them to), restored after the test."""
    with restored_global_rngs():
        random.seed(12345)
        np.random.seed(12345)
        torch.default_generator.manual_seed(12345)
        yield global_rng_states()


@pytest.fixture
def three_threads():
    """torch on 3 threads (the suite runs on 1), the previous count restored after the test."""
    previous = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        yield 3
    finally:
        torch.set_num_threads(previous)


# -- training --------------------------------------------------------------------------------


def test_training_leaves_the_global_rngs_as_they_were(tiny_context, seeded_globals):
    result = train_architecture(ARCH, tiny_context, seed=0, config=QUICK)
    assert result.ok, result.reason
    assert global_rng_states() == seeded_globals
    torch.default_generator.manual_seed(999)  # another global state: the same training
    again = train_architecture(ARCH, tiny_context, seed=0, config=QUICK)
    assert again.val_recall == result.val_recall and again.val_ndcg == result.val_ndcg


def test_training_seeds_no_other_devices_generators(tiny_context, monkeypatch):
    """``torch.manual_seed`` would also seed every CUDA (and MPS, XPU) generator, which a fork
    of the CPU generator does not restore."""
    calls = []
    for module, function in (
        (torch.cuda, "manual_seed_all"),
        (torch.cuda, "manual_seed"),
        (torch.mps, "manual_seed"),
        (torch.xpu, "manual_seed_all"),
    ):
        monkeypatch.setattr(module, function, lambda *a, f=function: calls.append((f, a)))
    assert train_architecture(ARCH, tiny_context, seed=3, config=QUICK).ok
    assert calls == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_leaves_its_generator_as_it_was(tiny_dataset):
    from nasenv.train import TrainingContext

    context = TrainingContext(tiny_dataset, k=5, device="cuda")
    torch.cuda.manual_seed(12345)
    cpu, cuda = torch.get_rng_state(), torch.cuda.get_rng_state()
    first = train_architecture(ARCH, context, seed=0, config=QUICK)
    assert torch.equal(torch.get_rng_state(), cpu)
    assert torch.equal(torch.cuda.get_rng_state(), cuda)
    torch.cuda.manual_seed(999)
    again = train_architecture(ARCH, context, seed=0, config=QUICK)
    assert again.val_recall == first.val_recall


def test_training_with_threads_restores_the_callers_count(tiny_context, three_threads):
    during = []

    def record(epoch: int, recall: float) -> None:
        during.append(torch.get_num_threads())

    train_architecture(
        ARCH, tiny_context, 0, TrainConfig(max_epochs=2, batch_size=64, threads=1), record
    )
    assert during == [1, 1]
    assert torch.get_num_threads() == three_threads


def test_training_without_threads_never_sets_the_count(tiny_context, three_threads, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    train_architecture(ARCH, tiny_context, seed=0, config=QUICK)
    assert calls == []
    assert torch.get_num_threads() == three_threads


def test_a_failing_training_restores_threads_and_rngs(tiny_context, three_threads, seeded_globals):
    def interrupt(epoch: int, recall: float) -> None:
        raise KeyboardInterrupt

    config = TrainConfig(max_epochs=2, batch_size=64, threads=1)
    with pytest.raises(KeyboardInterrupt):
        train_architecture(ARCH, tiny_context, 0, config, interrupt)
    assert torch.get_num_threads() == three_threads
    assert global_rng_states() == seeded_globals


# -- the agents' helpers ---------------------------------------------------------------------


def test_single_threaded_restores_the_count_even_when_the_block_raises(three_threads):
    with single_threaded():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == three_threads
    with pytest.raises(RuntimeError, match="boom"), single_threaded():
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == three_threads


def test_restored_global_rngs_restores_them_even_when_the_block_raises(seeded_globals):
    with restored_global_rngs():
        random.seed(0)
        np.random.seed(0)
        torch.default_generator.manual_seed(0)
        assert global_rng_states() != seeded_globals
    assert global_rng_states() == seeded_globals
    with pytest.raises(RuntimeError, match="boom"), restored_global_rngs():
        random.random()
        np.random.random()
        torch.rand(1)
        raise RuntimeError("boom")
    assert global_rng_states() == seeded_globals


# -- environments and searches ---------------------------------------------------------------


def test_a_table_env_episode_leaves_the_global_rngs_alone(seeded_globals):
    env = tiny_env()
    _, info = env.reset(seed=0)
    terminated = False
    while not terminated:
        action = int(np.flatnonzero(info["action_mask"])[-1])
        _, _, terminated, _, info = env.step(action)
    assert "arch" in info
    assert global_rng_states() == seeded_globals


def test_the_registered_env_leaves_the_global_rngs_alone(seeded_globals):
    env = gym.make("RecNAS-Books-v0")
    _, info = env.reset(seed=0)
    env.action_space.seed(0)
    env.step(int(np.flatnonzero(info["action_mask"])[0]))
    env.reset()
    assert global_rng_states() == seeded_globals


SHORT = {  # hyperparameters that keep every search to about a second
    "ppo-plain": {"max_env_steps": 240},  # it would take thousands of steps to a valid one
    "portfolio": {"architectures": tuple(TINY_SPACE[i].to_string() for i in range(4))},
}


@pytest.mark.parametrize("name", list(AGENTS))
def test_a_search_leaves_the_global_rngs_alone(name, seeded_globals):
    reason = unavailable(name)
    if reason:
        pytest.skip(reason)
    agent = make_agent(name, seed=1, **SHORT.get(name, {}))
    result = run_search(agent, tiny_env(), Budget(12), seed=1)
    assert len(result.history) == 12 or name == "ppo-plain"
    assert global_rng_states() == seeded_globals


def test_tpe_restores_optunas_log_level(seeded_globals):
    optuna = pytest.importorskip(REQUIREMENTS["tpe"][0][0])
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        run_search(make_agent("tpe", seed=0), tiny_env(), Budget(5))
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(previous)
    assert global_rng_states() == seeded_globals


# -- imports ---------------------------------------------------------------------------------

IMPORT_EVERYTHING = """
import importlib, json, logging, pkgutil

def state():
    root = logging.getLogger()
    loggers = logging.Logger.manager.loggerDict
    return {
        "root": [root.level, [repr(h) for h in root.handlers]],
        "disable": logging.root.manager.disable,
        "loggers": {
            name: [logger.level, len(logger.handlers), logger.propagate, logger.disabled]
            for name, logger in sorted(loggers.items())
            if isinstance(logger, logging.Logger)
        },
    }

before = state()
imported, missing = [], []
for package in ("nasenv", "agents"):
    module = importlib.import_module(package)
    imported.append(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        try:
            importlib.import_module(info.name)
            imported.append(info.name)
        except ImportError as error:  # an optional extra that is not installed
            missing.append(f"{info.name}: {error}")
after = state()
after["loggers"] = {k: v for k, v in after["loggers"].items() if k in before["loggers"]}
print(json.dumps({"before": before, "after": after, "imported": imported, "missing": missing}))
"""


def test_importing_the_packages_configures_no_logging():
    """In a fresh interpreter: importing every module of ``nasenv`` and ``agents`` adds no
    handler to the root logger and changes no level of a logger that existed before."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert {"nasenv.env", "nasenv.train", "agents.runner", "agents.tpe"} <= set(report["imported"])
    assert report["after"] == report["before"], report["missing"]
