"""Does a wider sparse product amortise? CSR ``A @ X`` time against the width of ``X``.

    python -m benchmarks.spmm_width

Training several seeds of one architecture side by side would widen every sparse product
(3 seeds of dim 64 -> width 192); this measures whether that costs less than separate products.
One thread, Books-20core's normalised adjacency, median of 20 products after 3 warm-ups.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nasenv.data import load_dataset
from nasenv.train import TrainingContext


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.spmm_width", description=__doc__.split("\n\n")[0]
    )
    parser.parse_args()
    torch.set_num_threads(1)
    adjacency = TrainingContext(load_dataset("Books-20core")).graph.norm
    print(f"adjacency {tuple(adjacency.shape)}, {adjacency.values().numel():,} non-zeros, 1 thread")
    base = None
    for width in (64, 128, 192, 256):
        x = torch.randn(adjacency.shape[0], width)
        for _ in range(3):
            adjacency @ x
        times = []
        for _ in range(20):
            start = time.perf_counter()
            adjacency @ x
            times.append(time.perf_counter() - start)
        ms = statistics.median(times) * 1000
        base = base or ms
        print(
            f"width {width:4}: {ms:6.2f} ms  ({ms / base:.2f}x the width-64 time, "
            f"{width // 64}x the work)"
        )


if __name__ == "__main__":
    main()
