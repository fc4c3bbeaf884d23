"""The chain under attack with plain file operations and real processes, never through govtrain's own
commands: a tail cut and re-appended, the anchor file deleted, two processes racing for the same head or the
same idempotency key, a lock holder that hangs, and two model names that used to share a folder."""
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from govtrain.governance import chain
from govtrain.governance.chain import ChainError, anchor_path, chain_path, opened, repair_chain, verify_chain

FORK = multiprocessing.get_context("fork")


def records_of(chain_dir, model="credit"):
    return sorted((chain_path(chain_dir, model) / "records").glob("*.json"))


def grow(chain_dir, n=3, model="credit"):
    return [chain.append(chain_dir, model, "drift", version="1", model_root="ab" * 32, details={"i": i})
            for i in range(n)]


def test_a_cut_tail_takes_no_append_until_the_repair_records_it(tmp_path):
    written = grow(tmp_path)
    records_of(tmp_path)[-1].unlink()  # the insider deletes the newest record (a drift finding)
    assert verify_chain(tmp_path, "credit").ok  # what is left verifies on its own
    with pytest.raises(ChainError, match=r"ends at record 2, but its anchor file anchors record 3 .*removed from "
                                         r"the end; nothing appended. `govtrain audit repair-chain --model credit`"):
        chain.append(tmp_path, "credit", "drift", version="1", model_root=None)  # the routine run that hid it
    assert len(records_of(tmp_path)) == 2

    repair = repair_chain(tmp_path, "credit", "a drift record was deleted")
    assert repair["seq"] == 3 and repair["details"]["set_aside"] == []
    assert repair["details"]["anchors"] == {chain.ANCHOR_FILE: chain.anchor_of(written[2])}  # the cut, kept
    assert "removed from the end" in repair["details"]["problem"]
    assert chain.append(tmp_path, "credit", "drift", version="1", model_root=None)["seq"] == 4


def test_a_deleted_anchor_file_or_one_rolled_back_is_refused(tmp_path):
    written = grow(tmp_path)
    anchor_path(tmp_path, "credit").unlink()
    with pytest.raises(ChainError, match="has 3 records but no anchor in its anchor file"):
        chain.append(tmp_path, "credit", "drift", version="1", model_root=None)
    anchor_path(tmp_path, "credit").write_text(chain.anchor_of(written[0]))  # an older anchor, and the tail kept
    with pytest.raises(ChainError, match="anchors record 1: 2 records were added without anchoring"):
        chain.append(tmp_path, "credit", "drift", version="1", model_root=None)


def test_an_outside_anchor_is_checked_under_the_same_lock(tmp_path):
    written = grow(tmp_path)
    with pytest.raises(ChainError, match=r"but the registry anchors 000000000000… there: the chain was rewritten"):
        with opened(tmp_path, "credit", outside_anchor=lambda: f"2:{'0' * 64}"):
            pass
    with opened(tmp_path, "credit", outside_anchor=lambda: chain.anchor_of(written[1])) as c:  # behind: a crash
        assert c.head == written[2]["hash"]


def test_an_append_naming_a_head_that_moved_is_refused(tmp_path):
    grow(tmp_path, 1)
    with opened(tmp_path, "credit") as c:
        seen = c.head
    chain.append(tmp_path, "credit", "promote", version="2", model_root=None)  # another writer got there first
    with pytest.raises(ChainError, match="moved on .* nothing appended; retry"):
        chain.append(tmp_path, "credit", "promote", version="3", model_root=None, extends=seen)


def _promote_after_barrier(chain_dir, barrier, to_version):
    barrier.wait()
    with opened(chain_dir, "credit") as c:  # read the champion and move it under one lock
        moves = [r for r in c.records if r["step"] == "promote"]
        c.append("promote", version=to_version, model_root=None,
                 details={"from_version": moves[-1]["details"]["to_version"] if moves else None,
                          "to_version": to_version})


def test_two_promotions_racing_never_both_move_from_the_same_champion(tmp_path):
    """The measured fork ("1 -> 3" and "1 -> 4" both recorded in 2 of 5 tries), 20 tries with a barrier."""
    for attempt in range(20):
        folder = tmp_path / str(attempt)
        barrier = FORK.Barrier(2)
        workers = [FORK.Process(target=_promote_after_barrier, args=(folder, barrier, v)) for v in ("3", "4")]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
            assert w.exitcode == 0
        moves = chain.read_chain(folder, "credit")
        assert [m["details"]["from_version"] for m in moves] in ([None, "3"], [None, "4"])
        assert verify_chain(folder, "credit").ok


def _drift_with_key(chain_dir, barrier, key):
    barrier.wait()
    chain.append(chain_dir, "credit", "drift", version="1", model_root=None,
                 details={"idempotency_key": key, "pid": os.getpid()}, unique=("idempotency_key", key))


def test_one_idempotency_key_makes_one_record_under_concurrency(tmp_path):
    for attempt in range(10):
        folder = tmp_path / str(attempt)
        barrier = FORK.Barrier(2)
        workers = [FORK.Process(target=_drift_with_key, args=(folder, barrier, "cron-0600")) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
            assert w.exitcode == 0
        assert len(chain.read_chain(folder, "credit")) == 1


HANG = """
import sys, time
from govtrain.governance.chain import opened
with opened(sys.argv[1], "credit"):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_hung_lock_holder_is_named_by_pid_and_does_not_block_for_ever(tmp_path):
    grow(tmp_path, 1)
    holder = subprocess.Popen([sys.executable, "-c", HANG, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        with pytest.raises(ChainError, match=rf"locked by PID {holder.pid} for over 1 s .*nothing appended"):
            with opened(tmp_path, "credit", timeout=1):
                pass
        assert time.monotonic() - started < 10
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # the group this test created
        holder.wait()
    with opened(tmp_path, "credit", timeout=5) as c:  # a killed holder's lock is released by the kernel
        assert len(c.records) == 1


@pytest.mark.parametrize("first,second", [("credit model", "credit_model"), ("a/b", "a_b"), (".anchors", "%2Eanchors")])
def test_model_names_never_share_a_chain(tmp_path, first, second):
    chain.append(tmp_path, first, "register", version="1", model_root="a" * 64)
    chain.append(tmp_path, second, "register", version="1", model_root="b" * 64)
    assert chain_path(tmp_path, first) != chain_path(tmp_path, second)
    assert [r["model"] for r in chain.read_chain(tmp_path, first)] == [first]
    assert [r["model"] for r in chain.read_chain(tmp_path, second)] == [second]
    assert not chain_path(tmp_path, first).name.startswith(".")
    assert json.loads(records_of(tmp_path, second)[0].read_bytes())["model_root"] == "b" * 64
