"""The train split as chunks on disk, dealt to the ranks afresh each epoch: each rank reads only its own.

The train step writes the train rows, in one seeded shuffle (a file sorted by class or date gives no chunk
one kind of row), as `train-NNNNN.safetensors` chunks of equal size, the last one shorter, and a manifest
(`train-chunks.json`: rows and sha256 of each chunk). Each epoch a seeded permutation of the chunks is dealt
round-robin to the ranks (rank r takes positions r, r + world, ...): together the ranks read every chunk once
an epoch, each about 1/world of the rows, and no rank holds the whole split. Every rank takes the same number
of steps: a rank whose chunks hold fewer rows than the largest share (ceil(chunks / world) full chunks)
repeats its own first rows, in this epoch's order, up to it, as DistributedSampler pads.

At least CHUNKS_PER_WORKER chunks per configured worker, so the shares differ by at most one chunk, and at
most MAX_CHUNK_ROWS rows a chunk (about 2 MiB at 10 features), so a rank's share grows in small steps.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

MANIFEST = "train-chunks.json"
MAX_CHUNK_ROWS = 65_536
CHUNKS_PER_WORKER = 8


def chunk_rows(rows: int, workers: int) -> int:
    per_worker = max(CHUNKS_PER_WORKER, math.ceil(rows / (workers * MAX_CHUNK_ROWS)))
    return max(1, math.ceil(rows / (workers * per_worker)))


def record_type(batch: dict[str, torch.Tensor]) -> np.dtype:
    """One spilled row: its place in the shuffle, then its tensors' values."""
    return np.dtype([("slot", "i8"), *[(name, values.numpy().dtype, tuple(values.shape[1:]))
                                       for name, values in batch.items()]])


def write_chunks(job_dir: Path, batches: Iterable[dict[str, torch.Tensor]], rows: int, workers: int,
                 seed: int) -> dict:
    """The rows of `batches` (x_num, x_cat, y, a batch at a time, `rows` in all) shuffled once and cut into
    chunks; returns the manifest.

    Row r goes to place slot[r] of one seeded permutation of all rows, so chunk k holds places k*size to
    (k+1)*size - 1. Each batch's rows are appended to their chunk's spill file with their places, then each chunk
    is read back alone and written in place order: memory holds one batch, one chunk and the places (8 bytes a
    row), never the split, and the chunks are the bytes one shuffle of the whole split would give."""
    from govtrain.governance.hashing import sha256_file

    size = chunk_rows(rows, workers)
    slot = np.empty(rows, dtype=np.int64)
    slot[np.random.default_rng(seed).permutation(rows)] = np.arange(rows)
    spill = job_dir / "train-spill"
    shutil.rmtree(spill, ignore_errors=True)  # a killed step's appends would join this one's
    spill.mkdir(parents=True)
    record: np.dtype | None = None
    start = 0
    for batch in batches:
        record = record or record_type(batch)
        found = np.empty(len(batch["y"]), dtype=record)
        found["slot"] = slot[start:start + len(found)]
        for name, values in batch.items():
            found[name] = values.numpy()
        found = found[np.argsort(found["slot"] // size, kind="stable")]
        numbers, begins = np.unique(found["slot"] // size, return_index=True)
        for number, part in zip(numbers, np.split(found, begins[1:]), strict=True):
            with open(spill / f"{number:05d}", "ab") as handle:
                handle.write(part.tobytes())
        start += len(found)
    if start != rows or record is None:
        raise ValueError(f"the train split gave {start} rows; its footer says {rows}")
    del slot
    chunks = []
    for number, first in enumerate(range(0, rows, size)):
        spilled = np.fromfile(spill / f"{number:05d}", dtype=record)
        placed = np.empty_like(spilled)
        placed[spilled["slot"] - first] = spilled
        path = job_dir / f"train-{number:05d}.safetensors"
        # a copy in C order: a field of no columns (a table without categoricals) keeps the record's stride
        # under ascontiguousarray, which torch refuses
        save_file({name: torch.from_numpy(np.array(placed[name], order="C")) for name in (record.names or ())[1:]},
                  str(path))
        (spill / f"{number:05d}").unlink()
        chunks.append({"file": path.name, "rows": len(placed), "sha256": sha256_file(path)})
    spill.rmdir()
    manifest = {"rows": rows, "chunk_rows": size, "seed": seed, "chunks": chunks,
                "rule": (__doc__ or "").split("\n\n")[1].replace("\n", " ")}
    (job_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def read_manifest(job_dir: Path) -> dict:
    return json.loads((job_dir / MANIFEST).read_text())


def deal(chunks: int, world: int, seed: int, epoch: int) -> list[list[int]]:
    """Each rank's chunks for one epoch, in the order it reads them. A world larger than the chunks gives each
    empty rank one chunk another rank also reads (its rows count as padding)."""
    order = np.random.default_rng([seed, epoch]).permutation(chunks).tolist()
    dealt = [order[rank::world] for rank in range(world)]
    return [mine or [order[rank % chunks]] for rank, mine in enumerate(dealt)]


def share_rows(rows: int, world: int, size: int | None = None) -> int:
    """The rows every rank steps through each epoch (its own, padded): the largest share any deal of chunks of
    `size` rows (chunk_rows' for `world` workers when None) can give. The train step plans epochs with it."""
    size = size or chunk_rows(rows, world)
    return math.ceil(math.ceil(rows / size) / world) * size


def load_share(job_dir: Path, manifest: dict, mine: list[int], device: torch.device
               ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], int]:
    """A rank's chunks for the epoch as (x_num, x_cat, y) on the device, and the bytes they hold."""
    parts = [load_file(str(job_dir / manifest["chunks"][k]["file"])) for k in mine]
    joined = {name: torch.cat([p[name] for p in parts]).to(device) for name in ("x_num", "x_cat", "y")}
    held = sum(t.element_size() * t.nelement() for t in joined.values())
    return (joined["x_num"], joined["x_cat"], joined["y"]), held


def epoch_order(rows: int, share: int, seed: int, epoch: int, rank: int, device: torch.device) -> torch.Tensor:
    """A shuffle of the rank's own rows, padded with its first rows to `share` (every rank, the same steps)."""
    generator = torch.Generator().manual_seed(int(np.random.default_rng([seed, epoch, rank]).integers(2**62)))
    order = torch.randperm(rows, generator=generator)
    if share > rows:
        order = torch.cat([order, order.repeat(math.ceil((share - rows) / rows))[:share - rows]])
    return order.to(device)


def digest(chunk_numbers: list[int]) -> str:
    """A short digest of the chunks one rank read in one epoch (the record lists them too)."""
    return hashlib.sha256(json.dumps(sorted(chunk_numbers)).encode()).hexdigest()[:16]
