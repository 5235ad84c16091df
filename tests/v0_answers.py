"""A digest of what the version 0 spaces and env ids answer, to pin them across changes.

``python tests/v0_answers.py`` prints it; ``tests/test_encoder_space.py`` holds the digest that
the code before the version 1 space (the ``encoder`` decision) printed, and checks that today's
code prints it still: the strings, hashes and indices of the core space and of a sample of the
full space, and every observation, reward, flag and info entry of seeded episodes of
``RecNAS-Books-v0``, ``RecNAS-Books-Surrogate-v0`` and ``RecNAS-Books-MO-v0``.

Every bit counts, except in the surrogate's episodes, whose floats enter rounded to 9 decimals:
its predictions are matrix products, whose last bits depend on which OpenBLAS kernel the CPU runs
(AVX-512 or AVX2), not on our code.
"""

from __future__ import annotations

import hashlib
import warnings

import gymnasium as gym
import numpy as np

import nasenv
from nasenv.space import CORE, FULL


def _canonical(value: object, decimals: int | None) -> object:
    """``value`` as nested lists, floats rounded to ``decimals`` if given (module docstring)."""
    array = np.asarray(value)
    if decimals is not None and np.issubdtype(array.dtype, np.floating):
        return np.round(array.astype(np.float64), decimals).tolist()
    return array.tolist()


def _episodes(
    env_id: str, episodes: int, digest: hashlib._Hash, decimals: int | None = None
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Gymnasium's note that a newer version exists
        env = gym.make(env_id)
    rng = np.random.default_rng(0)
    digest.update(f"{env_id} {env.observation_space} {env.action_space}".encode())
    for episode in range(episodes):
        obs, info = env.reset(seed=episode)
        done = False
        while not done:
            digest.update(repr(_canonical(obs, decimals)).encode())
            digest.update(
                repr(sorted((k, _canonical(v, decimals)) for k, v in info.items())).encode()
            )
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
            obs, reward, terminated, truncated, info = env.step(action)
            digest.update(f"{_canonical(reward, decimals)} {terminated} {truncated}".encode())
            done = terminated or truncated
        digest.update(repr(_canonical(obs, decimals)).encode())
        digest.update(repr(sorted((k, _canonical(v, decimals)) for k, v in info.items())).encode())
    env.close()


def v0_answers() -> str:
    """The SHA-256 of the version 0 answers (module docstring)."""
    digest = hashlib.sha256()
    for index, arch in enumerate(CORE):
        digest.update(f"{index} {arch} {arch.hash} {FULL.index(arch)} {arch.decisions()}".encode())
    for index in np.random.default_rng(0).integers(len(FULL), size=2000):
        arch = FULL[int(index)]
        digest.update(f"{index} {arch} {arch.hash} {arch.decisions()}".encode())
    digest.update(f"{len(FULL)} {len(CORE)}".encode())
    _episodes("RecNAS-Books-v0", 40, digest)
    _episodes("RecNAS-Books-Surrogate-v0", 10, digest, decimals=9)
    _episodes("RecNAS-Books-MO-v0", 10, digest)
    assert nasenv.__version__
    return digest.hexdigest()


if __name__ == "__main__":
    print(v0_answers())
