"""Does leakage streamed (stream_step.py: hash partitions on disk) reach the held path's findings on real tables?

    python -m benchmarks.leakage_agreement [--tables a,b,c] [--kinds clean,duplicates,...] [--versus unstable]

Every case of the public-table corpus (benchmarks.real_tables: each table clean and with its planted defects) is
written as a user would, split by the pipeline's own prepare step, then measured by the leakage step twice on the
same split files: held (the splits encoded whole) and streamed, forced on with hash partitions of 64 rows so every
table spans several. A case agrees when every gate has the same verdict and the same value (to 1e-6). Prints one
row per case that differs, then the totals. `--versus unstable` compares instead the held path with the
near-duplicate candidate it chose before docs/decisions.md 65 (whichever row of a grid cell an unstable sort put
first) against the held path now (the first row of the cell).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.real_tables import kinds_for, load_corpus, write_case
from govtrain.components.leakage import duplicates, leakage, spill
from govtrain.components.prepare import prepare
from govtrain.core.config import load_config


def gates(record: dict) -> dict:
    return {c["id"]: (c["value"], c["passed"]) for c in record["checks"]}


def differences(held: dict, streamed: dict) -> dict:
    keys = held.keys() | streamed.keys()
    return {k: (held.get(k), streamed.get(k)) for k in sorted(keys)
            if held.get(k) is None or streamed.get(k) is None or held[k][1] != streamed[k][1]
            or abs(held[k][0] - streamed[k][0]) > 1e-6 * max(1.0, abs(held[k][0]))}


def run_case(config_path: Path, folder: Path, versus: str) -> tuple[dict, dict] | str:
    config = load_config(config_path)
    paths = {s: folder / f"{s}.parquet" for s in ("train", "val", "test")}
    try:
        prepare(config, paths, folder / "ev-prepare", "agree")
    except Exception as exc:  # noqa: BLE001  a table prepare refuses (its record says why) is not compared
        return f"prepare stopped it: {type(exc).__name__}: {str(exc)[:100]}"
    held = leakage(config, paths, folder / "ev-prepare", folder / "ev-held", "agree")
    if versus == "unstable":
        class Unstable(duplicates.Lookup):
            def __init__(self, hashes, stable=False):
                super().__init__(hashes, stable=False)

        original, duplicates.Lookup = duplicates.Lookup, Unstable
        try:
            before = leakage(config, paths, folder / "ev-prepare", folder / "ev-before", "agree")
        finally:
            duplicates.Lookup = original
        return gates(before), gates(held)
    streamed_config = config.model_copy(deep=True)
    streamed_config.split.stream_from_rows = 30
    streamed = leakage(streamed_config, paths, folder / "ev-prepare", folder / "ev-streamed", "agree")
    return gates(held), gates(streamed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", default=None)
    parser.add_argument("--kinds", default=None)
    parser.add_argument("--versus", choices=["streamed", "unstable"], default="streamed")
    args = parser.parse_args()
    spill.PARTITION_ROWS = 64
    prepared, skipped = load_corpus(args.tables.split(",") if args.tables else None)
    counts = {"agree": 0, "differ": 0, "not split": 0}
    gates_compared, started = 0, time.perf_counter()
    for table in prepared:
        for kind in kinds_for(table):
            if args.kinds and kind not in args.kinds.split(","):
                continue
            with tempfile.TemporaryDirectory() as tmp:
                config_path, _ = write_case(table, kind, Path(tmp))
                outcome = run_case(config_path, Path(tmp), args.versus)
            if isinstance(outcome, str):
                counts["not split"] += 1
                print(f"{table.spec.slug}/{kind}: {outcome}")
                continue
            held, streamed = outcome
            gates_compared += len(held)
            found = differences(held, streamed)
            counts["differ" if found else "agree"] += 1
            if found:
                print(f"{table.spec.slug}/{kind}: DIFFERS {found}")
    print(f"tables {len(prepared)} (skipped {len(skipped)}); cases: {counts}; gates compared {gates_compared}; "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
