"""``cairn.run``: the config runner (``cairn run``) from Python."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from . import _cairn
from ._types import _pick, _time

__all__ = ["run", "TargetReport", "RepositoryOutcome"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class RepositoryOutcome:
    """What one target's run did in one repository: the new snapshot's id,
    its figures, how many snapshots retention forgot, whether gc and the
    configured check ran (``check_clean`` is None when no check ran), and
    ``error`` when a step failed."""

    repository: str
    ok: bool
    snapshot: Optional[str]
    complete: bool
    files: int
    bytes_read: int
    bytes_added: int
    excluded: int
    forgotten: int
    gc_packs_deleted: Optional[int]
    check_clean: Optional[bool]
    snapshots: int
    stored_bytes: int
    error: Optional[str]


@dataclass(frozen=True)
class TargetReport:
    """The report of one target's run, as ``cairn run --json`` gives it.

    ``status`` is ``"ok"`` or ``"failed"``; ``summary`` is the line ``cairn
    run`` prints; ``warnings`` are what went wrong without failing the run
    (a notification not delivered); ``cancelled`` is True for a run stopped
    by Ctrl-C (nothing of it is visible).
    """

    target: str
    status: str
    started: datetime
    duration_secs: float
    repositories: Tuple[RepositoryOutcome, ...]
    error: Optional[str]
    warnings: Tuple[str, ...]
    cancelled: bool
    summary: str

    @property
    def ok(self) -> bool:
        """True when every step in every repository succeeded."""
        return self.status == "ok"

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "TargetReport":
        return _pick(
            cls,
            d,
            started=_time(d["started"]),
            repositories=tuple(_pick(RepositoryOutcome, r) for r in d["repositories"]),
        )


def run(
    config: Optional[PathLike] = None,
    targets: Union[str, Sequence[str]] = (),
    *,
    state_dir: Optional[PathLike] = None,
    due: bool = False,
    progress: Optional[Any] = None,
) -> Tuple[TargetReport, ...]:
    """Runs the targets of a runner config file once, as ``cairn run
    [TARGET...] [--due]`` does: for each target, in config order, its
    ``before`` hook, a snapshot to each of its repositories, retention, gc
    and check when configured, its hooks and notifications; the state is
    saved after each target.

    ``config`` defaults as for the CLI (``$CAIRN_CONFIG``, else
    ``~/.config/cairn/cairn.toml``), ``state_dir`` likewise
    (``$CAIRN_STATE_DIR``, ...); ``targets`` empty means all; ``due`` runs
    only the targets whose schedule is due. A failing target does not
    raise: its report says ``status == "failed"`` and why. A config that
    does not validate raises :class:`cairn.ConfigError` listing every
    problem; an unknown target :class:`cairn.NotFound`. Ctrl-C cancels the
    target in flight (nothing of its snapshot visible) and raises
    ``KeyboardInterrupt``.
    """
    if isinstance(targets, str):
        targets = [targets]
    text = _cairn.run(
        None if config is None else os.fspath(config),
        list(targets),
        None if state_dir is None else os.fspath(state_dir),
        due,
        progress,
    )
    return tuple(TargetReport._from(d) for d in json.loads(text))
