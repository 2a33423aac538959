"""Each exception type, with its attributes and the library's message."""

from pathlib import Path

import pytest

import cairn
from conftest import random_bytes


def flip_a_pack_byte(repo_dir: Path) -> None:
    pack = next((repo_dir / "packs").rglob("*.pack"))
    data = bytearray(pack.read_bytes())
    data[len(data) // 3] ^= 0xFF
    pack.write_bytes(bytes(data))


def test_hierarchy():
    for cls in (cairn.NotFound, cairn.AmbiguousSelector, cairn.VerificationError,
                cairn.RepositoryLocked, cairn.CorruptRepository, cairn.WrongPassword,
                cairn.TargetExists, cairn.InvalidSelector, cairn.InvalidArgument,
                cairn.RepositoryExists):
        assert issubclass(cls, cairn.CairnError)
        assert cls.__doc__


def test_missing_repository_is_not_found(tmp_path):
    with pytest.raises(cairn.NotFound) as e:
        cairn.Repository.open(tmp_path / "nowhere")
    assert e.value.path == str(tmp_path / "nowhere")
    assert str(e.value) == f"no cairn repository at {tmp_path / 'nowhere'}"


def test_init_twice_is_repository_exists(repo, tmp_path):
    with pytest.raises(cairn.RepositoryExists) as e:
        cairn.Repository.init(tmp_path / "repo")
    assert e.value.path == str(tmp_path / "repo")


def test_path_not_in_snapshot(repo, tmp_path):
    (tmp_path / "f").write_text("x")
    snap = repo.snapshot([tmp_path / "f"], kind="config", name="c")
    with pytest.raises(cairn.NotFound) as e:
        repo.restore("c", tmp_path / "out", paths=["nope"])
    assert e.value.path == "nope" and e.value.id and snap.id.startswith(e.value.id[:8])


def test_invalid_arguments(repo, tmp_path):
    with pytest.raises(cairn.InvalidArgument) as e:
        repo.forget(keep_last=0)
    assert "keep_last" in str(e.value)
    with pytest.raises(cairn.InvalidArgument):
        repo.snapshot([], kind="model", name="m")
    with pytest.raises(ValueError):  # InvalidArgument is a ValueError too
        repo.forget(keep_within="soon")


def test_corrupt_pack_verify_names_the_file_and_restore_refuses(repo, tmp_path):
    src = tmp_path / "weights.bin"
    src.write_bytes(random_bytes(3, 400_000))
    repo.snapshot([src.name], kind="model", name="m")  # stored as `weights.bin`
    flip_a_pack_byte(tmp_path / "repo")
    with pytest.raises(cairn.VerificationError) as e:
        repo.verify("m")
    assert e.value.path == "weights.bin"
    assert e.value.selector == "m" and len(e.value.failures) == 1
    with pytest.raises(cairn.CorruptRepository) as e:
        repo.restore("m", tmp_path / "out")
    assert e.value.path == "weights.bin" and e.value.id
    assert str(e.value).startswith("weights.bin: chunk ")
    assert not (tmp_path / "out" / "weights.bin").exists()
    report = repo.check(read_data=True)
    assert not report.is_clean
    assert report.damage[0].problem == "chunk_corrupt"
    assert report.damage[0].affected[0][2] == ("weights.bin",)


def test_locked_repository(repo, tmp_path):
    (tmp_path / "f").write_text("x")
    repo.snapshot([tmp_path / "f"], kind="config", name="c")
    with repo.forget(keep_last=1) as plan:  # holds the exclusive lock
        with cairn.Repository.open(tmp_path / "repo") as other:
            with pytest.raises(cairn.RepositoryLocked) as e:
                other.snapshot([tmp_path / "f"], kind="config", name="c")
            assert e.value.holders and "forget" in e.value.holders[0]
            assert str(e.value).startswith("repository is locked:")
    assert plan.report is None
    repo.snapshot([tmp_path / "f"], kind="config", name="c")  # released


def test_an_encrypted_repository_opens_with_its_password_only(tmp_path, model_dir):
    location = tmp_path / "enc"
    (tmp_path / "pw").write_text("right horse\n")
    with cairn.Repository.init(location, encryption=True, password="right horse") as repo:
        repo.snapshot([model_dir], kind="model", name="m")
    with cairn.Repository.open(location, password_file=tmp_path / "pw") as repo:
        assert [s.name for s in repo.snapshots()] == ["m"]
    with pytest.raises(cairn.WrongPassword) as wrong:
        cairn.Repository.open(location, password="battery staple")
    assert wrong.value.path == str(location)
    with pytest.raises(cairn.WrongPassword):
        cairn.Repository.open(location)
    with pytest.raises(cairn.InvalidArgument):
        cairn.Repository.open(location, password="a", password_file=tmp_path / "pw")
    (tmp_path / "crlf").write_bytes(b"right horse\r\nignored\n")
    with cairn.Repository.open(location, password_file=tmp_path / "crlf") as repo:
        assert len(list(repo.snapshots())) == 1
    # The library reads the file, as for the CLI: errors name the file.
    for name, content in [("missing", None), ("empty", b"\n"), ("binary", b"\xff\n")]:
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(cairn.InvalidArgument) as bad:
            cairn.Repository.open(location, password_file=tmp_path / name)
        assert bad.value.path == str(tmp_path / name)
        assert str(bad.value).startswith(f"password file {tmp_path / name}:")
