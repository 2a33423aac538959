"""Frozen records returned by :class:`cairn.Repository`: snapshots and the
reports of each operation. Times are timezone-aware ``datetime`` (UTC),
sizes ``int`` bytes, lists tuples."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Optional, Tuple

__all__ = [
    "Snapshot",
    "Skipped",
    "SnapshotReport",
    "FileEntry",
    "RestoreReport",
    "VerifyReport",
    "Finding",
    "CheckReport",
    "Verdict",
    "HistoryPlan",
    "ForgetReport",
    "GcReport",
    "HistoryLatest",
    "Stats",
    "Change",
    "Diff",
    "CopiedSnapshot",
    "CopyReport",
    "Relabeled",
]


def _time(text: str) -> datetime:
    """An RFC 3339 time from the library as an aware datetime."""
    # fromisoformat before 3.11 takes at most 6 fraction digits and no "Z".
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def _pick(cls: type, data: Dict[str, Any], **override: Any) -> Any:
    """``cls`` from the keys of ``data`` it has fields for, lists as tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    values.update(override)
    return cls(**values)


@dataclass(frozen=True)
class Snapshot:
    """A snapshot as listed: its label, when and where it was taken, its size.

    ``size`` is the logical size of its files in bytes; ``time`` is UTC.
    """

    id: str
    kind: str
    name: str
    version: Optional[str]
    tags: Tuple[str, ...]
    description: Optional[str]
    host: str
    time: datetime
    sources: Tuple[str, ...]
    file_count: int
    size: int
    files_read: int
    bytes_read: int
    added_bytes: int
    added_stored: int
    damaged: bool

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of the id, as the CLI shows it."""
        return self.id[:8]

    @property
    def history(self) -> str:
        """``kind/name``: the history this snapshot belongs to."""
        return f"{self.kind}/{self.name}"

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "Snapshot":
        stats = d.get("stats", {})
        return _pick(
            cls,
            d,
            time=_time(d["time"]),
            size=d["logical_bytes"],
            files_read=stats.get("files_read", 0),
            bytes_read=stats.get("bytes_read", 0),
            added_bytes=stats.get("added_raw", 0),
            added_stored=stats.get("added_stored", 0),
        )


@dataclass(frozen=True)
class Skipped:
    """An entry a snapshot left out: ``reason`` is ``unsupported``,
    ``unreadable``, ``non_utf8_name`` or ``non_utf8_link_target``."""

    path: str
    reason: str
    detail: str


@dataclass(frozen=True)
class SnapshotReport:
    """What a snapshot did. ``added_bytes`` is the new data before
    compression, ``added_stored`` after; ``dedup_ratio`` is logical bytes per
    new byte; ``complete`` is False when something was left out (``skipped``)
    or stored while it changed (``changed``, ``(path, detail)`` pairs);
    ``excluded`` counts entries an ``exclude`` pattern left out."""

    id: str
    kind: str
    name: str
    files: int
    files_read: int
    logical_bytes: int
    bytes_read: int
    chunks_new: int
    added_bytes: int
    added_stored: int
    duration: float
    dedup_ratio: float
    complete: bool
    skipped: Tuple[Skipped, ...]
    changed: Tuple[Tuple[str, str], ...]
    excluded: int

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "SnapshotReport":
        return _pick(
            cls,
            d,
            added_bytes=d["added_raw"],
            duration=d["duration_ms"] / 1000.0,
            skipped=tuple(_pick(Skipped, s) for s in d["skipped"]),
            changed=tuple((c["path"], c["detail"]) for c in d["changed"]),
        )


@dataclass(frozen=True)
class FileEntry:
    """One entry of a snapshot: ``kind`` is ``file``, ``dir`` or ``symlink``;
    ``sha256`` is hex (empty for non-files)."""

    path: str
    kind: str
    mode: int
    mtime: datetime
    size: int
    sha256: str
    link_target: str

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "FileEntry":
        kind = str(d["kind"]).lower()
        sha = bytes(d["sha256"]).hex() if kind == "file" else ""
        mtime = datetime.fromtimestamp(d["mtime_ns"] / 1e9, tz=timezone.utc)
        return _pick(cls, d, kind=kind, sha256=sha, mtime=mtime)


@dataclass(frozen=True)
class RestoreReport:
    """What a restore wrote; ``failed`` holds ``(path, message)`` pairs of
    files skipped with ``ignore_errors=True``."""

    files: int
    dirs: int
    symlinks: int
    bytes: int
    failed: Tuple[Tuple[str, str], ...]
    leftovers_removed: int

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "RestoreReport":
        return _pick(cls, d, failed=tuple((f["path"], f["error"]) for f in d["failed"]))


@dataclass(frozen=True)
class VerifyReport:
    """A verify that found every file intact: how many files and bytes."""

    files: int
    bytes: int


@dataclass(frozen=True)
class Finding:
    """One thing ``check`` found. ``problem`` names it (``pack_missing``,
    ``chunk_corrupt``, ``unreferenced_pack``, ...), ``details`` holds its
    fields (``pack``, ``chunk``, ``reason``, ...), ``damage`` is False for
    notes (leftovers), ``affected`` lists ``(snapshot, history, files)``."""

    problem: str
    details: Dict[str, Any]
    damage: bool
    affected: Tuple[Tuple[str, str, Tuple[str, ...]], ...]

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "Finding":
        p = d["problem"]
        if isinstance(p, dict):
            details = dict(p)
            name = details.pop("problem")
        else:
            name, details = p, {}
        affected = tuple(
            (a["snapshot"], a["history"], tuple(a["files"])) for a in d.get("affected", [])
        )
        return cls(problem=name, details=details, damage=d["damage"], affected=affected)


@dataclass(frozen=True)
class CheckReport:
    """What ``check`` looked at and found; findings are data, not errors."""

    snapshots: int
    packs: int
    packs_read: int
    chunks_read: int
    bytes_read: int
    findings: Tuple[Finding, ...]

    @property
    def is_clean(self) -> bool:
        """True when no finding is damage (notes are allowed)."""
        return not any(f.damage for f in self.findings)

    @property
    def damage(self) -> Tuple[Finding, ...]:
        """The findings that are damage."""
        return tuple(f for f in self.findings if f.damage)

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "CheckReport":
        return _pick(cls, d, findings=tuple(Finding._from(f) for f in d["findings"]))


@dataclass(frozen=True)
class Verdict:
    """A forget plan's verdict on one snapshot and the rules that keep it."""

    snapshot: Snapshot
    keep: bool
    reasons: Tuple[str, ...]


@dataclass(frozen=True)
class HistoryPlan:
    """The verdicts on one ``kind/name`` history, newest first."""

    kind: str
    name: str
    snapshots: Tuple[Verdict, ...]

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "HistoryPlan":
        verdicts = tuple(
            Verdict(Snapshot._from(v["snapshot"]), v["keep"], tuple(v["reasons"]))
            for v in d["snapshots"]
        )
        return cls(kind=d["kind"], name=d["name"], snapshots=verdicts)


@dataclass(frozen=True)
class ForgetReport:
    """What an executed forget removed (snapshot ids) and kept (a count)."""

    removed: Tuple[str, ...]
    kept: int
    finished: Tuple[str, ...]


@dataclass(frozen=True)
class GcReport:
    """What gc did: packs deleted and rewritten, bytes moved."""

    packs_deleted: int
    packs_rewritten: int
    packs_written: int
    chunks_moved: int
    bytes_moved: int
    chunks_dropped: int
    unknown_packs_deleted: int
    leftovers_deleted: int


@dataclass(frozen=True)
class HistoryLatest:
    """One history in ``stats``: how many snapshots, the latest and its age."""

    history: str
    snapshots: int
    latest_id: str
    latest_time: datetime
    age_seconds: int


@dataclass(frozen=True)
class Stats:
    """Dedup and compression figures over the latest snapshot of each history."""

    snapshots: int
    logical_bytes: int
    unique_bytes: int
    stored_bytes: int
    repository_pack_bytes: int
    dedup_ratio: float
    compression_ratio: float
    histories: Tuple[HistoryLatest, ...]

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "Stats":
        histories = tuple(
            _pick(HistoryLatest, h, latest_time=_time(h["latest_time"])) for h in d["histories"]
        )
        return _pick(cls, d, histories=histories)


@dataclass(frozen=True)
class Change:
    """A file that differs between two snapshots, with both sizes."""

    path: str
    old_size: int
    new_size: int


@dataclass(frozen=True)
class Diff:
    """What changed from one snapshot to another."""

    added: Tuple[Change, ...]
    removed: Tuple[Change, ...]
    changed: Tuple[Change, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "Diff":
        return cls(**{k: tuple(_pick(Change, c) for c in d[k]) for k in ("added", "removed", "changed")})


@dataclass(frozen=True)
class CopiedSnapshot:
    """One snapshot a copy selected: ``state`` is ``copied``, ``present``
    (the destination had it; nothing sent) or ``would_copy`` (dry run);
    the chunks and stored bytes sent for it; ``to_id`` its id in the
    destination (a new one when re-encoded, ``None`` for a re-encoding dry
    run's ``would_copy``)."""

    snapshot: Snapshot
    state: str
    chunks_sent: int
    bytes_sent: int
    to_id: Optional[str]

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "CopiedSnapshot":
        return cls(
            snapshot=Snapshot._from(d),
            state=d["state"],
            chunks_sent=d["chunks_sent"],
            bytes_sent=d["bytes_sent"],
            to_id=d["to_id"],
        )


@dataclass(frozen=True)
class CopyReport:
    """What :meth:`cairn.Repository.copy` did (with ``dry_run``: would do),
    as ``cairn copy --json`` reports it; ``bytes_sent`` are stored
    (compressed) bytes, ``raw_bytes_sent`` their size before compression.
    ``mode`` is ``by_id`` (chunks travelled as stored) or ``re_encoded``
    (the repositories cut or seal chunks differently: every file was read
    and stored again, ``raw_bytes_read`` of it; ``reason`` says why)."""

    source: str
    destination: str
    dry_run: bool
    mode: str
    reason: Optional[str]
    raw_bytes_read: int
    snapshots: Tuple[CopiedSnapshot, ...]
    snapshots_copied: int
    snapshots_present: int
    chunks_sent: int
    bytes_sent: int
    raw_bytes_sent: int
    packs_written: int
    duration: float

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "CopyReport":
        return _pick(
            cls,
            d,
            source=d["from"],
            destination=d["to"],
            snapshots=tuple(CopiedSnapshot._from(s) for s in d["snapshots"]),
            duration=d["duration_ms"] / 1000.0,
        )


@dataclass(frozen=True)
class Relabeled:
    """One snapshot :meth:`cairn.Repository.tag` changed: a label change
    gives it a new id (``new_id``; ``old_id`` no longer lists);
    ``changed`` is False when it already had that label."""

    old_id: str
    new_id: str
    changed: bool
    kind: str
    name: str
    version: Optional[str]
    tags: Tuple[str, ...]
    description: Optional[str]

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "Relabeled":
        label = d["label"]
        return cls(
            old_id=d["old_id"],
            new_id=d["new_id"],
            changed=d["changed"],
            kind=label["kind"],
            name=label["name"],
            version=label.get("version"),
            tags=tuple(label.get("tags") or ()),
            description=label.get("description"),
        )
