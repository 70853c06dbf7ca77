"""Calibrate the semantic filter's cosine threshold for a sentence encoder.

The paper's cut (0.8) was set for mean-pooled bert-base-uncased; other encoders spread cosines
differently (on MiniLM, 0.8 is far stricter). The stated target: the threshold at which the
configured encoder accepts `--target` (default 95 %) of the variants the paper's own filter
accepted, i.e. the reference's published augmented questions (new_WVQ_*.jsonl, each variant with
its seed in `ori_content`). The result is written as data the product ships
(culture_assets/data/filter_thresholds.yaml), with its provenance; the product never reads the
reference data itself.

Run: python bench/calibrate_threshold.py [--reference DIR] [--encoder NAME_OR_PATH] [--target 0.95] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from culture_assets.augment.embedder import Embedder  # noqa: E402
from culture_assets.augment.semantic_filter import CALIBRATION_FILE, PACKAGED_ENCODER  # noqa: E402

DEFAULT_REFERENCE = ROOT / ".." / "shared" / "data" / "culturellm"


def reference_pairs(reference: Path) -> list[tuple[str, str]]:
    """(seed, accepted variant) pairs from every new_WVQ_*.jsonl, each distinct pair once."""
    pairs: dict[tuple[str, str], None] = {}
    for path in sorted(reference.glob("new_WVQ_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("q_content") and row.get("ori_content") and row["q_content"] != row["ori_content"]:
                pairs[(row["ori_content"], row["q_content"])] = None
    return list(pairs)


def calibrated_threshold(similarities: np.ndarray, target: float) -> float:
    """The highest threshold that still accepts `target` of the given (accepted) pairs."""
    return float(np.quantile(similarities, 1.0 - target, method="lower"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=Path(os.environ.get("CULTURELLM_REFERENCE_DATA", DEFAULT_REFERENCE)))
    parser.add_argument("--encoder", default="", help="sentence-transformers name or path; empty: the packaged MiniLM")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--write", action="store_true", help=f"record the result in {CALIBRATION_FILE.name}")
    args = parser.parse_args()
    pairs = reference_pairs(args.reference)
    if not pairs:
        sys.exit(f"no new_WVQ_*.jsonl pairs under {args.reference}")
    embedder = Embedder(args.encoder)
    seeds = embedder.encode([s for s, _ in pairs])
    variants = embedder.encode([v for _, v in pairs])
    similarities = np.einsum("ij,ij->i", seeds, variants)
    threshold = calibrated_threshold(similarities, args.target)
    encoder = args.encoder or PACKAGED_ENCODER
    result = {
        "threshold": round(threshold, 4),
        "target": f"accepts {args.target:.0%} of the reference's published augmented questions (the paper's filter accepted them all at 0.8 under bert-base-uncased)",
        "pairs": len(pairs),
        "accepted_at_0.8": round(float((similarities >= 0.8).mean()), 4),
        "provenance": "bench/calibrate_threshold.py on CultureLLM's new_WVQ_*.jsonl",
    }
    print(json.dumps({"encoder": encoder, **result}, indent=1))
    if args.write:
        table = yaml.safe_load(CALIBRATION_FILE.read_text(encoding="utf-8")) if CALIBRATION_FILE.exists() else {}
        table = dict(table or {})
        table[encoder] = result
        CALIBRATION_FILE.write_text(yaml.safe_dump(table, sort_keys=True, allow_unicode=True), encoding="utf-8")
        print(f"written to {CALIBRATION_FILE}")


if __name__ == "__main__":
    main()
