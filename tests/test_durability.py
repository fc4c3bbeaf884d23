"""Evidence writes that survive a crash and a full disk, written as the attack: a torn chain record
left by a crash, appends after it, the repair; a disk that fills up under a record, a ledger and a chain
append (a real 64 KiB tmpfs where this machine lets us mount one, else ENOSPC injected into os.write)."""
import errno
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from govtrain.core import files
from govtrain.core.files import NoSpaceError, write_durably
from govtrain.governance import chain
from govtrain.governance.chain import ChainError, repair_chain, verify_chain
from govtrain.governance.evidence import StepEvidence


def three_records(chain_dir: Path, model: str = "credit") -> list[dict]:
    return [chain.append(chain_dir, model, step, version="1", model_root="ab" * 32)
            for step in ("register", "promote", "drift")]


def test_a_torn_record_is_named_and_an_append_after_it_is_refused_with_the_repair(tmp_path):
    records = three_records(tmp_path)
    newest = sorted((tmp_path / "credit" / "records").glob("*.json"))[-1]
    newest.write_bytes(newest.read_bytes()[:37])  # what a crash mid-write would have left, before this fix
    check = verify_chain(tmp_path, "credit")
    assert not check.ok and check.problem == "chain record 000003 of credit: not readable JSON"
    with pytest.raises(ChainError, match=r"chain record 000003 of credit is not readable JSON .*nothing appended.*"
                                         r"govtrain audit repair-chain --model credit"):
        chain.append(tmp_path, "credit", "promote", version="2", model_root="cd" * 32)
    assert len(list((tmp_path / "credit" / "records").glob("*.json"))) == 3  # nothing was added

    repair = repair_chain(tmp_path, "credit", "torn by a power cut")
    assert repair["step"] == "repair" and repair["parents"] == [records[1]["hash"]]
    assert repair["details"]["kept_records"] == 2
    [aside] = repair["details"]["set_aside"]
    assert aside["file"] == newest.name and aside["bytes"] == 37
    assert (tmp_path / "credit" / repair["details"]["set_aside_folder"] / newest.name).is_file()  # kept, not deleted
    assert verify_chain(tmp_path, "credit").ok
    after = chain.append(tmp_path, "credit", "promote", version="2", model_root="cd" * 32)
    assert after["seq"] == 4 and after["parents"] == [repair["hash"]]
    with pytest.raises(ChainError, match="verifies .* nothing to repair"):
        repair_chain(tmp_path, "credit", "again")


def test_an_altered_head_is_refused_too(tmp_path):
    three_records(tmp_path)
    newest = sorted((tmp_path / "credit" / "records").glob("*.json"))[-1]
    record = json.loads(newest.read_bytes())
    record["actor"] = "someone-else"
    newest.write_text(json.dumps(record))
    with pytest.raises(ChainError, match="000003 of credit does not match its hash"):
        chain.append(tmp_path, "credit", "promote", version="2", model_root=None)


def test_a_write_never_leaves_half_a_file_or_a_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "ledger.json"
    write_durably(target, b"old")
    real_write = os.write

    def dies_halfway(fd, data):
        real_write(fd, bytes(data[:3]))
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files.os, "write", dies_halfway)
    with pytest.raises(OSError, match="Input/output error"):
        write_durably(target, b"new content")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["ledger.json"]


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder on a 64 KiB tmpfs when mounting is allowed; else a folder whose writes fail with ENOSPC
    once 64 KiB have been written (the same error the kernel gives)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                             capture_output=True).returncode == 0
    if not mounted:
        budget = {"left": 64 * 1024}
        real_write = os.write

        def write(fd, data):
            if budget["left"] < len(data):
                raise OSError(errno.ENOSPC, "No space left on device")
            budget["left"] -= len(data)
            return real_write(fd, data)

        monkeypatch.setattr(files.os, "write", write)
    yield mount
    if mounted:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_names_the_path_and_says_no_space_left(full_disk):
    with pytest.raises(NoSpaceError, match=r"big\.bin: no space left on the device \(needed 200000 bytes\)"):
        write_durably(full_disk / "big.bin", os.urandom(200_000))
    assert list(full_disk.iterdir()) == []  # no temp file left behind

    evidence = StepEvidence("register", full_disk / "ev", run_id="r1", config_digest="0" * 64, parents=[])
    evidence.details = {"padding": "x" * 100_000}
    with pytest.raises(NoSpaceError, match=r"ev/records/[0-9a-f]{64}\.json: no space left"):
        evidence.finish()

    chain_dir = full_disk / "chains"
    with pytest.raises(NoSpaceError, match=r"chains/credit/records/000001-[0-9a-f]{64}\.json: no space left"):
        chain.append(chain_dir, "credit", "drift", version="1", model_root=None,
                     details={"padding": uuid.uuid4().hex * 4000})
    assert verify_chain(chain_dir, "credit").ok  # the failed append left no record behind


def test_a_full_disk_while_checkpointing_names_the_path_and_keeps_the_last_snapshot(full_disk):
    import torch

    from govtrain.components.train.snapshots import INCOMING, SNAPSHOT, write_snapshot

    write_snapshot(full_disk, {"epochs_run": 1, "w": torch.zeros(1000)})  # ~4 KB: fits
    with pytest.raises(NoSpaceError, match=rf"{INCOMING}: no space left on the device"):
        write_snapshot(full_disk, {"epochs_run": 2, "w": torch.zeros(50_000)})  # ~200 KB: does not
    kept = torch.load(full_disk / SNAPSHOT, weights_only=True)
    assert kept["epochs_run"] == 1  # the last whole snapshot is untouched
    assert sorted(p.name for p in full_disk.iterdir()) == [SNAPSHOT]  # no temp file left


def test_a_restart_without_room_for_a_snapshot_stops_before_training(tmp_path, monkeypatch):
    from collections import namedtuple

    import torch

    from govtrain.components.train import snapshots

    snapshots.write_snapshot(tmp_path, {"w": torch.zeros(10_000)})
    size = (tmp_path / snapshots.SNAPSHOT).stat().st_size
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(snapshots.shutil, "disk_usage", lambda _: usage(10**9, 10**9 - size // 2, size // 2))
    with pytest.raises(NoSpaceError, match=rf"{tmp_path}: no space left for the next snapshot"):
        snapshots.check_room(tmp_path)
    monkeypatch.undo()
    snapshots.check_room(tmp_path)  # room again: no complaint


# --- crafted exports --------------------------------------------------------------------------------
def crafted(path: Path, members: list[tuple[str, bytes]], symlink: str | None = None) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            archive.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize("members,symlink,message", [
    ([("../../outside.txt", b"x")], None, "would be written outside the extraction folder"),
    ([("/etc/cron.d/evil", b"x")], None, "would be written outside the extraction folder"),
    ([("bundle/ledger.json", b"{}")], "bundle/link", "is a symbolic link"),
    ([("bundle/zeros.bin", b"\0" * 20_000_000)], None, "inflates"),
    ([(f"bundle/f{i}", b"x") for i in range(12)], None, "12 members, more than the 10"),
])
def test_a_crafted_export_is_refused_before_anything_is_written(tmp_path, members, symlink, message):
    import zipfile

    from govtrain.governance.audit import UnsafeArchive, audit_export, safe_extract

    archive = crafted(tmp_path / "evil.zip", members, symlink)
    dest = tmp_path / "out"
    dest.mkdir()
    with zipfile.ZipFile(archive) as opened, pytest.raises(UnsafeArchive, match=message):
        safe_extract(opened, dest, max_members=10)
    assert list(dest.iterdir()) == [] and not (tmp_path / "outside.txt").exists()
    if "members" not in message:  # the auditor's command refuses it the same way
        with pytest.raises(UnsafeArchive):
            audit_export(archive)
