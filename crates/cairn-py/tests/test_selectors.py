"""Every selector form of the CLI names the same snapshot through Python."""

from datetime import timedelta

import pytest

import cairn
from conftest import random_bytes


@pytest.fixture
def history(repo, tmp_path):
    """Three versions of model `m` (contents seeded 0, 1, 2)."""
    src = tmp_path / "w.bin"
    for seed, v in enumerate(("1.0", "2.0", "3.0")):
        src.write_bytes(random_bytes(seed, 50_000))
        repo.snapshot([src.name], kind="model", name="m", version=v)  # stored as `w.bin`
    snaps = list(repo.snapshots(name="m"))
    return repo, snaps


def test_every_selector_form(history, tmp_path):
    repo, (s1, s2, s3) = history
    cases = {
        s2.id: s2,                      # full id
        s2.id[:8]: s2,                  # id prefix
        "m": s3,                        # latest of a name
        "m~1": s2,                      # git-style back steps
        "m~2": s1,
        "m~": s2,
        "m:1.0": s1,                    # version label
        "model/m": s3,                  # within one kind
        "model/m~1": s2,
        "model/m:2.0": s2,
        f"m@{(s2.time + timedelta(microseconds=1)).isoformat()}": s2,   # RFC 3339
        "m@2999-01-01": s3,             # a bare date: end of that day
    }
    for selector, want in cases.items():
        assert repo.resolve(selector).id == want.id, selector
    assert repo.resolve(s1).id == s1.id, "a Snapshot object is a selector too"
    out = tmp_path / "o"
    for i, selector in enumerate(["m~2", "m:2.0", s3.id[:6]]):
        repo.restore(selector, out / str(i))
    assert (out / "0/w.bin").read_bytes() == random_bytes(0, 50_000)


def test_selector_errors_carry_the_selector(history, tmp_path):
    repo, _ = history
    with pytest.raises(cairn.NotFound) as e:
        repo.resolve("m~9")
    assert e.value.selector == "m~9" and e.value.candidates
    with pytest.raises(cairn.NotFound) as e:
        repo.resolve("m@2000-01-01")
    assert e.value.selector == "m@2000-01-01"
    with pytest.raises(cairn.InvalidSelector) as e:
        repo.resolve("m@yesterday-ish")
    assert e.value.selector == "m@yesterday-ish"
    src = tmp_path / "x"
    src.write_text("x")
    repo.snapshot([src], kind="config", name="m")
    with pytest.raises(cairn.AmbiguousSelector) as e:
        repo.resolve("m")
    assert {c.split()[0] for c in e.value.candidates} == {"config/m", "model/m"}
    assert str(e.value).startswith("`m` is ambiguous")
    assert repo.resolve("config/m").kind == "config"
