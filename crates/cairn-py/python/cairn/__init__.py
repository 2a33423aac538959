"""cairn: a content-addressed, deduplicating backup store, from Python.

>>> import cairn
>>> with cairn.Repository.init("/tmp/repo") as repo:           # doctest: +SKIP
...     snap = repo.snapshot(["model.safetensors"], kind="model", name="m", version="1.0")
...     repo.restore("m:1.0", "restored/")

Every name here has a docstring; docs/PYTHON.md has longer examples.
"""

from ._cairn import __version__
from ._errors import (
    AmbiguousSelector,
    CairnError,
    ConfigError,
    CorruptRepository,
    InvalidArgument,
    InvalidSelector,
    NotFound,
    RepositoryExists,
    RepositoryLocked,
    TargetExists,
    VerificationError,
    WrongPassword,
)
from ._repository import ForgetPlan, GcPlan, Repository
from ._runner import RepositoryOutcome, TargetReport, run
from ._types import (
    Change,
    CheckReport,
    CopiedSnapshot,
    CopyReport,
    Diff,
    FileEntry,
    Finding,
    ForgetReport,
    GcReport,
    HistoryLatest,
    HistoryPlan,
    Relabeled,
    RestoreReport,
    Skipped,
    Snapshot,
    SnapshotReport,
    Stats,
    Verdict,
    VerifyReport,
)

__all__ = [
    "__version__",
    "Repository", "ForgetPlan", "GcPlan",
    "Snapshot", "SnapshotReport", "Skipped", "FileEntry", "RestoreReport", "VerifyReport",
    "CheckReport", "Finding", "HistoryPlan", "Verdict", "ForgetReport", "GcReport",
    "Stats", "HistoryLatest", "Diff", "Change", "CopyReport", "CopiedSnapshot", "Relabeled",
    "run", "TargetReport", "RepositoryOutcome",
    "CairnError", "NotFound", "AmbiguousSelector", "InvalidSelector", "VerificationError",
    "RepositoryLocked", "RepositoryExists", "TargetExists", "CorruptRepository",
    "WrongPassword", "InvalidArgument", "ConfigError",
]
