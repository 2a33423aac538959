"""An encrypted repository on a real S3 server (SeaweedFS, started by
.ci/run), written from one "host" and read from another: each host has its
own catalog cache, as two machines would."""

import os
import uuid

import pytest

import cairn
from conftest import tree

ENDPOINT = os.environ.get("CAIRN_TEST_S3_ENDPOINT")
BUCKET = os.environ.get("CAIRN_TEST_S3_BUCKET", "cairn-test")


@pytest.fixture
def s3_url(monkeypatch):
    if not ENDPOINT:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but CAIRN_TEST_S3_ENDPOINT is not set (.ci/run starts SeaweedFS)")
        pytest.skip("no S3 server: set CAIRN_TEST_S3_ENDPOINT (and AWS_* credentials), as .ci/run does")
    monkeypatch.setenv("AWS_ENDPOINT_URL", ENDPOINT)
    for key, default in [("AWS_ACCESS_KEY_ID", "cairn-ci"),
                         ("AWS_SECRET_ACCESS_KEY", "cairn-ci-secret"),
                         ("AWS_REGION", "us-east-1")]:
        monkeypatch.setenv(key, os.environ.get(key, default))
    return f"s3://{BUCKET}/pytest-{uuid.uuid4().hex[:12]}"


def host(monkeypatch, tmp_path, name):
    """Points the catalog cache at this host's own directory."""
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / f"cache-{name}"))


def test_s3_round_trip_across_two_hosts(s3_url, monkeypatch, tmp_path, model_dir):
    host(monkeypatch, tmp_path, "a")
    monkeypatch.chdir(model_dir.parent)
    with cairn.Repository.init(s3_url, encryption=True, password="correct horse") as repo:
        first = repo.snapshot([model_dir.name], kind="model", name="trading_model", version="1.0")
        assert first.complete and first.added_bytes > 700_000
        again = repo.snapshot([model_dir.name], kind="model", name="trading_model", version="1.1")
        assert again.added_bytes == 0, "an unchanged re-snapshot stores no data"

    host(monkeypatch, tmp_path, "b")
    with pytest.raises(cairn.WrongPassword):
        cairn.Repository.open(s3_url, password="wrong")
    with cairn.Repository.open(s3_url, password="correct horse") as repo:
        versions = [s.version for s in repo.snapshots(kind="model", name="trading_model")]
        assert versions == ["1.0", "1.1"], "host b sees what host a wrote"
        out = tmp_path / "restored"
        repo.restore("trading_model:1.0", out)
        assert tree(out / model_dir.name) == tree(model_dir)
        repo.verify("trading_model")
        assert repo.check(read_data=True).is_clean
