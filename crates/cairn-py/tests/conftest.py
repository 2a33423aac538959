"""Fixtures: real repositories in temp directories, real files."""

import os
import random
from pathlib import Path

import pytest

import cairn


def random_bytes(seed: int, n: int) -> bytes:
    """Deterministic incompressible bytes."""
    return random.Random(seed).randbytes(n)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch):
    """Each test runs in its temp directory, so sources given relative to it
    are stored under those short paths (cairn keeps a path as given)."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def repo(tmp_path: Path):
    """An empty repository, closed after the test."""
    with cairn.Repository.init(tmp_path / "repo") as r:
        yield r


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small model directory: weights, a nested config, an empty file, a
    symlink; given relative (`trading_model`), so it is stored under that name."""
    d = Path("trading_model")
    (d / "cfg").mkdir(parents=True)
    (d / "weights.bin").write_bytes(random_bytes(1, 700_000))
    (d / "cfg" / "config.json").write_text('{"layers": 4}')
    (d / "empty").write_bytes(b"")
    os.symlink("weights.bin", d / "latest")
    return d


def tree(root: Path) -> dict:
    """Every entry under root: file bytes, link targets, directories."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir",)
        else:
            out[rel] = ("file", p.read_bytes(), p.stat().st_mode & 0o7777)
    return out
