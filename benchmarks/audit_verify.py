"""`audit verify` on a big ledger: 10k records, and 1 GB of evidence files, against `sha256sum`.

    python -m benchmarks.audit_verify [--records 10000] [--files 100] [--file-mb 10]

Two bundles with the same 10k records: one whose records name no files (the record checks alone:
canonical JSON, hash, parent links, root), one where --files of them each name a --file-mb file.
The files' hashing rate is compared with coreutils `sha256sum` on the same files (one core each).
"""
import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.harness import measure, table
from govtrain.governance.hashing import canonical_json, record_hash, sha256_file
from govtrain.governance.ledger import LEDGER_FILE, root_hash, verify


def build(bundle: Path, records: int, files: int, file_mb: int, payloads: list[Path]) -> None:
    bundle.mkdir(parents=True)
    every = max(1, records // files) if files else 0
    out, previous = [], None
    for i in range(records):
        outputs = []
        if files and i % every == 0 and len([r for r in out if r["outputs"]]) < files:
            target = bundle / "files" / f"f{i:06d}.bin"
            target.parent.mkdir(exist_ok=True)
            os.link(payloads[len([r for r in out if r["outputs"]])], target)
            outputs = [{"name": f"files/{target.name}", "sha256": sha256_file(target), "kind": "evidence"}]
        record = {"step": f"s{i}", "started": f"2026-11-25T00:00:{i % 60:02d}", "finished": "x", "actor": "bench",
                  "metrics": {"i": i}, "checks": [], "decision": "pass", "rmf": ["MEASURE 2.1"],
                  "outputs": outputs, "inputs": [], "parents": [previous] if previous else []}
        record["hash"] = record_hash(record)
        previous = record["hash"]
        out.append(record)
    ledger = {"run_id": "bench", "outcome": "registered", "sealed": "now", "records": out,
              "root": root_hash("bench", "registered", "now", [r["hash"] for r in out])}
    (bundle / LEDGER_FILE).write_bytes(canonical_json(ledger))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--file-mb", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        payloads = []
        for i in range(args.files):
            path = tmp / "payload" / f"p{i}.bin"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(os.urandom(args.file_mb << 20))
            payloads.append(path)
        build(tmp / "records-only", args.records, 0, 0, payloads)
        build(tmp / "with-files", args.records, args.files, args.file_mb, payloads)
        total_mb = args.files * args.file_mb

        rec_s, rec_mb, rec = measure(lambda: verify(tmp / "records-only"))
        all_s, all_mb, full = measure(lambda: verify(tmp / "with-files"))
        assert rec.ok and full.ok and full.files_checked == args.files
        started = time.perf_counter()
        subprocess.run(["sha256sum", *map(str, sorted((tmp / "with-files" / "files").iterdir()))],
                       check=True, capture_output=True)
        peer_s = time.perf_counter() - started
        ours_rate = total_mb / (all_s - rec_s)
        table(f"audit verify: {args.records} records, {args.files} files x {args.file_mb} MB (one core)",
              ["what", "seconds", "MB/s", "peak MB"],
              [[f"records only ({args.records})", f"{rec_s:.2f}", "", f"{rec_mb:.0f}"],
               [f"records + {total_mb} MB files", f"{all_s:.2f}", f"{ours_rate:.0f}", f"{all_mb:.0f}"],
               ["sha256sum, same files", f"{peer_s:.2f}", f"{total_mb / peer_s:.0f}", ""],
               ["ours / sha256sum hashing rate", "", f"{ours_rate / (total_mb / peer_s):.2f}", ""]])


if __name__ == "__main__":
    main()
