"""Snapshot and restore through the package: bit-identical, typed reports."""

from datetime import datetime, timezone

import pytest

import cairn
from conftest import random_bytes, tree


def test_round_trip_is_bit_identical(repo, model_dir, tmp_path):
    seen = []
    report = repo.snapshot(
        [model_dir], kind="model", name="trading_model", version="1.0",
        tags=["pre-deploy"], description="before deploying v1",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert isinstance(report, cairn.SnapshotReport)
    assert report.kind == "model" and report.name == "trading_model"
    assert report.added_bytes == report.logical_bytes > 700_000
    assert report.complete and report.dedup_ratio == pytest.approx(1.0)
    assert seen and seen[-1][0] == seen[-1][1], "the callback sees the end of the work"
    with pytest.raises(Exception):
        report.id = "x"  # frozen

    out = tmp_path / "restored"
    r = repo.restore("trading_model:1.0", out)
    assert r.files == 3 and r.symlinks == 1
    assert tree(out / "trading_model") == tree(model_dir)

    # Unchanged: nothing read, everything deduplicated.
    again = repo.snapshot(str(model_dir), kind="model", name="trading_model", version="1.1")
    assert again.files_read == 0 and again.added_bytes == 0


def test_snapshots_are_typed_and_filtered(repo, model_dir):
    repo.snapshot([model_dir], kind="model", name="a", version="1", tags=["milestone"])
    repo.snapshot([model_dir], kind="portfolio", name="b")
    snaps = list(repo.snapshots())
    assert [s.name for s in snaps] == ["a", "b"]
    s = snaps[0]
    assert isinstance(s, cairn.Snapshot)
    assert isinstance(s.time, datetime) and s.time.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - s.time).total_seconds()) < 60
    assert isinstance(s.size, int) and s.size > 700_000
    assert s.tags == ("milestone",) and s.version == "1" and s.history == "model/a"
    assert [x.name for x in repo.snapshots(kind="portfolio")] == ["b"]
    assert [x.name for x in repo.snapshots(name="a")] == ["a"]
    assert [x.name for x in repo.snapshots(tag="milestone")] == ["a"]
    assert list(repo.snapshots(kind="config")) == []


def test_restore_only_some_paths_and_overwrite(repo, model_dir, tmp_path):
    repo.snapshot([model_dir], kind="model", name="m")
    out = tmp_path / "out"
    repo.restore("m", out, paths="trading_model/cfg/config.json")
    assert (out / "trading_model/cfg/config.json").read_text() == '{"layers": 4}'
    assert not (out / "trading_model/weights.bin").exists()

    (out / "trading_model/cfg/config.json").write_text("edited")
    with pytest.raises(cairn.TargetExists) as e:
        repo.restore("m", out, paths="trading_model/cfg/config.json")
    assert e.value.path.endswith("trading_model/cfg/config.json")
    assert (out / "trading_model/cfg/config.json").read_text() == "edited", "refused, untouched"
    repo.restore("m", out, overwrite=True)
    assert tree(out / "trading_model") == tree(model_dir)


def test_files_diff_stats_cat_check(repo, model_dir):
    repo.snapshot([model_dir], kind="model", name="m", version="1")
    (model_dir / "weights.bin").write_bytes(random_bytes(2, 700_000))
    (model_dir / "new.txt").write_text("hi")
    repo.snapshot([model_dir], kind="model", name="m", version="2")
    files = {f.path: f for f in repo.files("m")}
    assert files["trading_model/new.txt"].kind == "file"
    assert files["trading_model/cfg"].kind == "dir"
    assert len(files["trading_model/weights.bin"].sha256) == 64
    d = repo.diff("m~1", "m")
    assert [c.path for c in d.added] == ["trading_model/new.txt"]
    assert [c.path for c in d.changed] == ["trading_model/weights.bin"]
    assert repo.cat("m", "trading_model/new.txt") == b"hi"
    st = repo.stats(kind="model")
    assert st.snapshots == 2 and st.histories[0].history == "model/m"
    report = repo.check(read_data=True)
    assert report.is_clean and report.findings == () and report.packs_read >= 1


def test_forget_plan_then_execute_then_gc(repo, model_dir):
    for v in range(5):
        (model_dir / "weights.bin").write_bytes(random_bytes(10 + v, 200_000))
        repo.snapshot([model_dir], kind="model", name="m", version=str(v),
                      tags=["milestone"] if v == 0 else [])
    plan = repo.forget(kind="model", keep_last=2, keep_tag=["milestone"])
    assert sorted(s.version for s in plan.to_remove) == ["1", "2"]
    assert len(list(repo.snapshots())) == 5, "a dry run changes nothing"
    report = plan.execute()
    assert len(report.removed) == 2
    assert sorted(s.version for s in repo.snapshots()) == ["0", "3", "4"]
    gc = repo.gc()
    assert isinstance(gc, cairn.GcReport)
    assert repo.check(read_data=True).is_clean
    # dry_run=False executes at once; keep_within spans are parsed like the CLI's.
    plan = repo.forget(kind="model", keep_within="30d", dry_run=False)
    assert plan.report is not None and plan.report.removed == ()


def test_closed_repository_refuses_calls(tmp_path):
    with cairn.Repository.init(tmp_path / "r") as r:
        pass
    with pytest.raises(ValueError):
        list(r.snapshots())
    # Re-opened by path, pathlib or str.
    with cairn.Repository.open(tmp_path / "r") as r2:
        assert list(r2.snapshots()) == []


def test_exclude_patterns_leave_entries_out(repo, model_dir, tmp_path):
    (model_dir / "scratch.tmp").write_bytes(b"temporary")
    (model_dir / "cache").mkdir()
    (model_dir / "cache" / "x.bin").write_bytes(b"cached")
    report = repo.snapshot([model_dir], kind="model", name="m", exclude=["*.tmp", "cache/"])
    assert report.excluded == 2 and report.complete
    paths = {f.path for f in repo.files("m")}
    assert "trading_model/weights.bin" in paths
    assert not any(p.endswith("scratch.tmp") or "/cache" in p for p in paths), paths
