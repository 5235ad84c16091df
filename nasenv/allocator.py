"""Keep freed memory in the process: glibc's ``malloc`` tuned for training loops.

Every training step allocates and frees the same large tensors (on Books-20core, gathered rows
of 49,152 x 64 floats: 12.5 MB). glibc returns such blocks to the kernel when they are freed
(above its mmap threshold, or by trimming the top of the heap), and the next step touches fresh
pages again: a LightGCN-3 training on Books-5core took 59.6 million minor page faults and spent
28% of its CPU time in the kernel. Three ``mallopt`` settings keep the memory for reuse:
``M_MMAP_THRESHOLD`` at its maximum (32 MiB), ``M_TRIM_THRESHOLD`` at 1 GiB, and
``M_MMAP_MAX`` at 0, so that blocks above the threshold (a validation ranking's 2,560 x 4,276
scores, 44 MB on Books-20core; the gathered rows of a ``concat`` combination, 38 MB) come from
the heap too instead of fresh pages at every step. Results are bit-identical (the allocator
decides where tensors live, never what they hold). On Books-20core five epochs of LightGCN-3
took 13% less time with the first two settings (``benchmarks/RESULTS.md``, "Where an epoch's
time goes"); the third is measured there too ("Large blocks from the heap").

This is process-wide state, so the library never sets it on its own: the processes the package
owns call :func:`keep_freed_memory` (the ``recnas`` and ``python -m nasenv`` commands, a table
build's workers, the live search's worker processes). Call it yourself in a training script.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MMAP_THRESHOLD_MAX = 32 << 20
"""glibc's largest mmap threshold on 64-bit systems (``4 * 1024 * 1024 * sizeof(long)``)."""
TRIM_THRESHOLD = 1 << 30


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Tune this process's glibc ``malloc`` to keep freed memory (once per process); ``False``
    where the C library has no ``mallopt`` (not glibc: macOS, musl, Windows), which changes
    nothing."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_MMAP_MAX, 0),  # no block from mmap: large ones are reused as well
    )
    return all([bool(mallopt(option, value)) for option, value in settings])
