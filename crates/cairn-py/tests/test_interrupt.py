"""Ctrl-C and raising callbacks stop an operation cleanly; threads share a
repository."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import cairn
from conftest import random_bytes

CHILD = textwrap.dedent(
    """
    import sys, cairn
    repo = cairn.Repository.open(sys.argv[1])
    def progress(done, total):
        print("progress", done, total, flush=True)
    try:
        if sys.argv[2] == "snapshot":
            repo.snapshot([sys.argv[3]], kind="model", name="big", progress=progress)
        else:
            repo.restore("big", sys.argv[3], progress=progress)
        print("completed", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    """
)


def interrupt_child(repo, *args):
    """Runs CHILD, sends it SIGINT once its operation has started."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, repo.root, *args], stdout=subprocess.PIPE, text=True
    )
    first = child.stdout.readline()
    assert first.startswith("progress"), first
    child.send_signal(signal.SIGINT)
    rest = child.stdout.read()
    assert child.wait(timeout=60) == 0
    assert rest.strip().endswith("interrupted"), rest


def test_ctrl_c_during_a_long_snapshot(repo, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for i in range(24):  # 192 MiB of incompressible data
            f.write(os.urandom(8 << 20))
    interrupt_child(repo, "snapshot", str(big))
    # Nothing half-visible, the lock released, the repository usable.
    with cairn.Repository.open(repo.root) as again:
        assert list(again.snapshots()) == []
        assert again.check().is_clean
        with again.gc(dry_run=True) as plan:   # needs the exclusive lock
            assert plan.bytes_to_reclaim >= 0
        small = tmp_path / "small.bin"
        small.write_bytes(random_bytes(5, 100_000))
        again.snapshot([small], kind="model", name="big")
        assert [s.name for s in again.snapshots()] == ["big"]

    # A restore interrupted leaves no half-written file and no lock.
    repo.snapshot([big.name], kind="model", name="big")  # stored as `big.bin`
    out = tmp_path / "out"
    interrupt_child(repo, "restore", str(out))
    assert not out.exists() or list(out.iterdir()) == [], "no file, no temp file"
    with repo.gc(dry_run=True):
        pass
    repo.restore("big", out)
    assert (out / "big.bin").stat().st_size == big.stat().st_size


class Boom(Exception):
    pass


def test_a_raising_callback_aborts_and_propagates(repo, tmp_path):
    src = tmp_path / "w.bin"
    src.write_bytes(random_bytes(7, 2_000_000))

    def progress(done, total):
        raise Boom(f"stop at {done}")

    with pytest.raises(Boom):
        repo.snapshot([src], kind="model", name="m", progress=progress)
    assert list(repo.snapshots()) == []
    repo.snapshot([src.name], kind="model", name="m")  # stored as `w.bin`
    with pytest.raises(Boom):
        repo.restore("m", tmp_path / "out", progress=progress)
    assert not (tmp_path / "out" / "w.bin").exists()
    with pytest.raises(Boom):
        repo.verify("m", progress=progress)
    assert repo.check(read_data=True).is_clean
    with repo.gc(dry_run=True):
        pass  # no lock left behind


def test_threads_share_one_repository(repo, tmp_path):
    errors = []

    def work(i):
        try:
            src = tmp_path / f"src{i}"
            src.mkdir()
            (src / "w.bin").write_bytes(random_bytes(100 + i, 1_000_000))
            for v in range(3):
                # Given relative (the test runs in tmp_path): stored as `src<i>`.
                repo.snapshot([src.name], kind="model", name=f"m{i}", version=str(v), force=True)
                list(repo.snapshots())
            repo.restore(f"m{i}:1", tmp_path / f"out{i}")
            assert (tmp_path / f"out{i}" / f"src{i}" / "w.bin").read_bytes() == \
                (src / "w.bin").read_bytes()
            repo.verify(f"m{i}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(repo.snapshots())) == 12
    assert repo.check(read_data=True).is_clean


def test_the_gil_is_released_while_a_snapshot_runs(repo, tmp_path):
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(64 << 20))
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.005)

    t = threading.Thread(target=ticker)
    t.start()
    started = time.monotonic()
    repo.snapshot([src], kind="model", name="m")
    elapsed = time.monotonic() - started
    done.set()
    t.join()
    # A held GIL would starve the ticker for the whole snapshot (a tick or
    # two at most); lenient, for a loaded machine.
    assert len(ticks) >= max(5, elapsed / 0.005 / 20), (len(ticks), elapsed)
