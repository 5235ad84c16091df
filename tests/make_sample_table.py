"""Write a sample table the tests use: every architecture of ``TINY_SPACE`` trained for real
on a tiny synthetic dataset, three seeds, through the same code as the shipped tables
(:func:`nasenv.testing.build_sample_table`).

    python -m tests.make_sample_table            # tests/data/tiny.npz
    python -m tests.make_sample_table tiny-b     # tests/data/tiny-b.npz, a second task

Stored seconds are measured wall time, so a rebuilt table has other bytes and checksum.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nasenv.data import write_checksums
from nasenv.testing import build_sample_table

OUT = Path(__file__).resolve().parent / "data"


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    table = build_sample_table(name)
    table.save(OUT / f"{name}.npz")
    write_checksums(OUT)
    print(table, (OUT / f"{name}.npz").stat().st_size, "bytes")
