"""The examples of docs/PYTHON.md run as written."""

import re
from pathlib import Path

import cairn
from conftest import random_bytes

DOC = Path(__file__).resolve().parents[3] / "docs" / "PYTHON.md"


def examples() -> list:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_model_backup_manager(tmp_path):
    scope: dict = {}
    exec(examples()[0], scope)
    m = scope["ModelBackupManager"](tmp_path / "repo", max_backups=2)
    # Relative to tmp_path, where the test runs: stored (and rolled back)
    # under that name.
    model = Path("trading_model.joblib")
    for v in range(4):
        model.write_bytes(random_bytes(v, 100_000))
        m.create_backup(model, "trading_model", f"1.{v}", tags=["milestone"] if v == 0 else ())
    assert [b.version for b in m.list_backups("trading_model")] == ["1.0", "1.2", "1.3"]
    assert m.verify_backup("trading_model")
    m.rollback("trading_model", "1.2", tmp_path / "out")
    assert (tmp_path / "out" / model.name).read_bytes() == random_bytes(2, 100_000)
    assert m.get_backup_stats()["backups"] == 3


def test_portfolio_backup(tmp_path):
    scope: dict = {}
    exec(examples()[1], scope)
    results = []
    state = tmp_path / "book.parquet"
    state.write_bytes(b"positions")
    with cairn.Repository.init(tmp_path / "repo") as repo:
        scope["backup_portfolio"](repo, state, "book", retention_days=30,
                                  on_result=lambda ok, *rest: results.append(ok))
        assert results == [True]
        assert [s.name for s in repo.snapshots(kind="portfolio")] == ["book"]
