"""Snapshot and restore of one model file through Python and through the CLI.

Usage (release builds of both, e.g. after `pip install ./crates/cairn-py`
and `cargo build --release`):

    python crates/cairn-py/bench/python_vs_cli.py MODEL_FILE target/release/cairn [ROUNDS]

Each round makes a fresh repository per side and alternates which side runs
first, so a busy neighbour costs both alike; the medians are printed with the
ratio Python / CLI, for the wall-clock time and for the CPU time (user +
system, of all threads: `time.process_time()` for the Python side, the
child's rusage for the CLI), which a busy neighbour disturbs much less.
Work files go beside MODEL_FILE's directory in `pybench-work/` and are
removed at the end.
"""

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cairn


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(fn) -> tuple:
    """(wall seconds, CPU seconds of this process and its children)."""
    wall, cpu, kids = time.perf_counter(), time.process_time(), children_cpu()
    fn()
    return (
        time.perf_counter() - wall,
        time.process_time() - cpu + children_cpu() - kids,
    )


def python_side(model: Path, work: Path) -> tuple:
    repo = cairn.Repository.init(work / "py-repo")
    snap = timed(lambda: repo.snapshot([model], kind="model", name="bench"))
    rest = timed(lambda: repo.restore("bench", work / "py-out"))
    repo.close()
    return snap, rest


def cli_side(model: Path, work: Path, cli: str) -> tuple:
    repo = str(work / "cli-repo")
    run = lambda *a: subprocess.run([cli, "--quiet", "--repo", repo, *a], check=True,
                                    stdout=subprocess.DEVNULL)
    run("init")
    snap = timed(lambda: run("snapshot", str(model), "--kind", "model", "--name", "bench"))
    rest = timed(lambda: run("restore", "bench", str(work / "cli-out")))
    return snap, rest


def main() -> None:
    model, cli = Path(sys.argv[1]).resolve(), sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    work = model.parent / "pybench-work"
    load_before = os.getloadavg()
    results = {"python": [], "cli": []}
    for i in range(rounds):
        order = ["python", "cli"] if i % 2 == 0 else ["cli", "python"]
        for side in order:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            t = python_side(model, work) if side == "python" else cli_side(model, work, cli)
            results[side].append(t)
    shutil.rmtree(work, ignore_errors=True)
    size = model.stat().st_size / 2**20
    print(f"load average before/after: {load_before} / {os.getloadavg()}")
    for phase, k in (("snapshot", 0), ("restore", 1)):
        for side in ("python", "cli"):
            rounds_text = "  ".join(f"{t[k][0]:.2f}s/{t[k][1]:.2f}cpu" for t in results[side])
            print(f"{phase:9} {side:6} rounds: {rounds_text}")
        py = statistics.median(t[k][0] for t in results["python"])
        c = statistics.median(t[k][0] for t in results["cli"])
        py_cpu = statistics.median(t[k][1] for t in results["python"])
        c_cpu = statistics.median(t[k][1] for t in results["cli"])
        print(f"{phase:9} wall python {py:6.2f} s ({size / py:6.0f} MiB/s)  "
              f"cli {c:6.2f} s ({size / c:6.0f} MiB/s)  python/cli {py / c:.3f}")
        print(f"{phase:9} cpu  python {py_cpu:6.2f} s  cli {c_cpu:6.2f} s  "
              f"python/cli {py_cpu / c_cpu:.3f}")


if __name__ == "__main__":
    main()
