"""What several benchmark scripts share: where the repository and the results are, how a result
is written, and the sample tables of their smoke modes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nasenv.table import BenchmarkTable
from nasenv.testing import load_sample_table

ROOT = Path(__file__).resolve().parent.parent
"""The repository root (the benchmarks run from a checkout, not from an installed package)."""
RESULTS = ROOT / "benchmarks" / "results"
"""Where the benchmarks write their results (the default of ``--results`` where there is one)."""
SAMPLE_DIR = ROOT / "tests" / "data"
"""The committed sample tables ``tiny.npz`` and ``tiny-b.npz``: data files over
:data:`nasenv.testing.TINY_SPACE`, written by ``python -m tests.make_sample_table``
(:func:`nasenv.testing.build_sample_table`) and read here by path (no test code is imported)."""


def sample_table(name: str = "tiny") -> BenchmarkTable:
    """The committed sample table of the synthetic task ``name`` (``tiny`` or ``tiny-b``),
    checked against its ``SHA256SUMS``."""
    return load_sample_table(SAMPLE_DIR / f"{name}.npz")


def add_plot_option(parser: argparse.ArgumentParser) -> None:
    """``--no-plot``: write no figure (the figures need matplotlib, the ``plots`` extra)."""
    parser.add_argument(
        "--no-plot", action="store_true", help="write no figure (figures need matplotlib)"
    )


def add_results_option(parser: argparse.ArgumentParser) -> None:
    """``--results DIR``: where the script writes its outputs (default ``benchmarks/results``)."""
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="directory of the outputs (default benchmarks/results)",
    )


def write_results(directory: Path, stem: str, record: Any, text: str) -> None:
    """Write ``record`` as ``<directory>/<stem>.json`` and the report ``text`` as ``<stem>.md``
    (the directory made if needed), then print the report."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    (directory / f"{stem}.md").write_text(text)
    print(text)
