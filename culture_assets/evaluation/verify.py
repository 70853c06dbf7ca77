"""Check a downloaded evaluation data directory against the manifests.

    python -m culture_assets.evaluation.verify --data-dir DIR [--manifests DIR] [--culture KEY]

Prints one line per dataset (ok / missing / checksum mismatch / not available) and exits 1
when a dataset that has a known file is missing or differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from culture_assets.evaluation.loader import EVAL_DATA_ENV, DatasetProblem, DatasetStatus, check_files, default_data_dir
from culture_assets.evaluation.manifest import load_manifests


def verify(data_dir: Path, manifests_dir: Path | None = None, culture: str | None = None) -> list[tuple[str, DatasetStatus, str]]:
    results = []
    for manifest in load_manifests(manifests_dir, culture):
        try:
            check_files(manifest, data_dir)
            results.append((manifest.id, DatasetStatus.LOADED, ", ".join(f.path for f in manifest.files)))
        except DatasetProblem as problem:
            results.append((manifest.id, problem.status, str(problem)))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), help=f"default: ${EVAL_DATA_ENV}")
    parser.add_argument("--manifests", type=Path, default=None, help="default: datasets_manifest/ of this checkout")
    parser.add_argument("--culture", default=None)
    args = parser.parse_args(argv)
    if args.data_dir is None:
        parser.error(f"give --data-dir or set {EVAL_DATA_ENV}")
    results = verify(args.data_dir.resolve(), args.manifests, args.culture)
    for dataset, status, detail in results:
        print(f"{'ok' if status is DatasetStatus.LOADED else status.value:18s} {dataset:48s} {detail}")
    counts = {s: sum(1 for _, status, _ in results if status is s) for s in DatasetStatus}
    print(
        f"{counts[DatasetStatus.LOADED]} ok, {counts[DatasetStatus.MISSING]} missing, "
        f"{counts[DatasetStatus.CHECKSUM_MISMATCH]} checksum mismatch, {counts[DatasetStatus.NOT_AVAILABLE]} declared without a known file"
    )
    return 1 if counts[DatasetStatus.MISSING] or counts[DatasetStatus.CHECKSUM_MISMATCH] else 0


if __name__ == "__main__":
    sys.exit(main())
