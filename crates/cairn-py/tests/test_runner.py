"""The config runner, copy and tag through the package, on real
repositories and a real config file."""

import json
from datetime import datetime

import pytest

import cairn
from conftest import random_bytes


def write_config(tmp_path, body=""):
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "state.json").write_text('{"book": 1}')
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "m.bin").write_bytes(random_bytes(3, 50_000))
    cfg = tmp_path / "cairn.toml"
    cfg.write_text(
        f"""
[repository.local]
path = "repo"

[target.trading_model]
kind = "model"
paths = ["models/m.bin"]
retention = {{ keep_last = 2 }}

[target.portfolio]
kind = "portfolio"
paths = ["data/"]

[target.broken]
kind = "config"
paths = ["gone"]
{body}
"""
    )
    return cfg


def test_run_returns_typed_reports_and_keeps_state(tmp_path):
    cairn.Repository.init(tmp_path / "repo").close()
    cfg = write_config(tmp_path)
    state = tmp_path / "state"
    reports = cairn.run(config=cfg, targets=["trading_model", "broken"], state_dir=state)
    assert [r.target for r in reports] == ["trading_model", "broken"]
    ok, broken = reports
    assert isinstance(ok, cairn.TargetReport) and ok.ok and ok.status == "ok"
    assert isinstance(ok.started, datetime) and ok.started.tzinfo is not None
    (local,) = ok.repositories
    assert isinstance(local, cairn.RepositoryOutcome)
    assert local.repository == "local" and local.files == 1 and local.bytes_read == 50_000
    assert ok.summary.startswith("trading_model: ok")
    assert not broken.ok and "gone" in broken.error
    saved = json.loads((state / "runner-state.json").read_text())
    assert saved["targets"]["broken"]["consecutive_failures"] == 1
    # Retention of the target applies; the snapshots are in the repository.
    for _ in range(2):
        cairn.run(cfg, "trading_model", state_dir=state)
    with cairn.Repository.open(tmp_path / "repo") as repo:
        assert [s.name for s in repo.snapshots(kind="model")] == ["trading_model"] * 2
    # Every target when none is named.
    assert [r.target for r in cairn.run(cfg, state_dir=state)] == ["broken", "portfolio", "trading_model"]


def test_run_errors_are_typed(tmp_path):
    cairn.Repository.init(tmp_path / "repo").close()
    cfg = write_config(tmp_path)
    with pytest.raises(cairn.NotFound) as e:
        cairn.run(cfg, ["nope"], state_dir=tmp_path / "s")
    assert e.value.selector == "nope" and e.value.path == str(cfg)
    bad = tmp_path / "bad.toml"
    bad.write_text('[repository.r]\npath = "r"\ncolour = 1\n[target.t]\nkind = "m"\npaths = ["x"]\nschedule = "soon"\n')
    with pytest.raises(cairn.ConfigError) as e:
        cairn.run(bad, state_dir=tmp_path / "s")
    assert e.value.path == str(bad)
    assert f"{bad}:3: repository.r.colour" in str(e.value)
    assert f"{bad}:7: target.t.schedule" in str(e.value)
    with pytest.raises(cairn.NotFound):
        cairn.run(tmp_path / "missing.toml", state_dir=tmp_path / "s")


def test_copy_sends_what_is_missing(tmp_path, model_dir):
    with cairn.Repository.init(tmp_path / "a") as a, cairn.Repository.init(tmp_path / "b") as b:
        a.snapshot([model_dir], kind="model", name="m", version="1")
        a.snapshot([model_dir], kind="portfolio", name="p")
        plan = a.copy(b, kind="model", dry_run=True)
        assert isinstance(plan, cairn.CopyReport) and plan.dry_run
        assert [s.state for s in plan.snapshots] == ["would_copy"]
        assert list(b.snapshots()) == []
        done = a.copy(b, "m:1")
        assert done.snapshots_copied == 1 and done.bytes_sent > 0
        assert isinstance(done.snapshots[0].snapshot, cairn.Snapshot)
        assert [s.name for s in b.snapshots()] == ["m"]
        again = a.copy(b)
        assert again.snapshots_present == 1 and again.snapshots_copied == 1
        restored = tmp_path / "out"
        b.restore("m:1", restored)
        assert (restored / "trading_model" / "weights.bin").read_bytes() == (model_dir / "weights.bin").read_bytes()


def test_copy_into_an_encrypted_repository_re_encodes(tmp_path, model_dir):
    with cairn.Repository.init(tmp_path / "plain") as a, cairn.Repository.init(
        tmp_path / "sealed", encryption=True, password="pw"
    ) as b:
        a.snapshot([model_dir], kind="model", name="m", version="1")
        done = a.copy(b)
        assert done.mode == "re_encoded" and "encrypted" in done.reason
        assert done.raw_bytes_read > 0 and done.snapshots_copied == 1
        copied = done.snapshots[0]
        assert copied.to_id is not None and copied.to_id != copied.snapshot.id
        again = a.copy(b)
        assert again.snapshots_present == 1 and again.snapshots_copied == 0
        b.restore("m:1", tmp_path / "out")
        assert (tmp_path / "out" / "trading_model" / "weights.bin").read_bytes() == (
            model_dir / "weights.bin"
        ).read_bytes()
    same = cairn.Repository.init(tmp_path / "other")
    with same, cairn.Repository.open(tmp_path / "plain") as a:
        assert a.copy(same).mode == "by_id"


def test_tag_relabels_and_names_missing_selectors(repo, model_dir):
    snap = repo.snapshot([model_dir], kind="model", name="m", tags=["a"])
    (r,) = repo.tag(snap.id, add="milestone", remove=["a"], version="2.0")
    assert isinstance(r, cairn.Relabeled) and r.changed and r.old_id == snap.id
    assert r.tags == ("milestone",) and r.version == "2.0"
    (listed,) = repo.snapshots()
    assert listed.id == r.new_id and listed.tags == ("milestone",)
    assert repo.resolve("m:2.0").id == r.new_id
    (same,) = repo.tag("m", add="milestone")
    assert not same.changed
    with pytest.raises(cairn.NotFound):
        repo.tag("nothing-here", add="x")
    # keep_tag in a forget plan protects it.
    repo.snapshot([model_dir], kind="model", name="m", version="3.0")
    with repo.forget(kind="model", keep_last=1, keep_tag=["milestone"]) as plan:
        assert plan.to_remove == ()
