"""``cairn.Repository``: the Python face of the library's facade."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import _cairn
from ._errors import VerificationError
from ._types import (
    CheckReport,
    CopyReport,
    Diff,
    FileEntry,
    ForgetReport,
    GcReport,
    HistoryPlan,
    Relabeled,
    RestoreReport,
    Snapshot,
    SnapshotReport,
    Stats,
    VerifyReport,
    _pick,
)

__all__ = ["Repository", "ForgetPlan", "GcPlan", "Selector", "PathLike", "ProgressCallback"]

PathLike = Union[str, "os.PathLike[str]"]
#: A snapshot selector (``"llama"``, ``"llama~2"``, ``"llama@2026-11-17"``,
#: ``"llama:v3"``, ``"model/llama"``, an id prefix) or a :class:`Snapshot`.
Selector = Union[str, Snapshot]
#: Called as ``progress(done, total)`` in bytes, with the GIL held, at most
#: about ten times a second; raising from it aborts the operation.
ProgressCallback = Callable[[int, int], Any]


def _selector(s: Selector) -> str:
    if isinstance(s, Snapshot):
        return s.id
    if isinstance(s, str):
        return s
    raise TypeError(f"a selector is a str or a cairn.Snapshot, not {type(s).__name__}")


def _strings(values: Union[str, Iterable[str], None]) -> List[str]:
    """One string or several, as a list (a lone ``str`` is not split)."""
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    return list(values)


def _paths(paths: Union[PathLike, Iterable[PathLike]]) -> List[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [os.fspath(p) for p in paths]


class Repository:
    """An open cairn repository.

    Open one with :meth:`open` or create one with :meth:`init`; use it as a
    context manager (or call :meth:`close`) to release it. Methods may be
    called from several threads at once: each runs with the GIL released,
    and Ctrl-C stops a long one cleanly (``KeyboardInterrupt``, nothing
    half-written, locks released).
    """

    def __init__(self, native: "_cairn.Repository") -> None:
        """Not for direct use: see :meth:`open` and :meth:`init`."""
        self._native = native

    @classmethod
    def open(
        cls,
        location: PathLike,
        *,
        password: Optional[str] = None,
        password_file: Optional[PathLike] = None,
    ) -> "Repository":
        """Opens the existing repository at ``location``: a local directory or
        ``s3://bucket/prefix`` (credentials and endpoint from the ``AWS_*``
        environment variables, as the CLI). An encrypted one needs
        ``password`` or ``password_file`` (its first line).

        Raises :class:`cairn.NotFound` if there is none and
        :class:`cairn.WrongPassword` if the password does not open it.
        """
        return cls(
            _cairn.Repository.open(_location(location), password, _optional_path(password_file))
        )

    @classmethod
    def init(
        cls,
        location: PathLike,
        *,
        chunk_avg: Optional[int] = None,
        compression: int = 3,
        encryption: bool = False,
        password: Optional[str] = None,
        password_file: Optional[PathLike] = None,
    ) -> "Repository":
        """Creates a repository at ``location`` (a missing or empty directory,
        or an empty ``s3://`` prefix) and opens it.

        ``chunk_avg`` is the average chunk size in bytes (default 64 KiB),
        ``compression`` the zstd level (0..19), ``encryption`` seals
        everything under ``password`` (or ``password_file``), as ``cairn
        init [--encryption]``. A remote repository should be encrypted.
        """
        return cls(
            _cairn.Repository.init(
                _location(location), chunk_avg, compression, encryption,
                password, _optional_path(password_file),
            )
        )

    def close(self) -> None:
        """Releases the repository; later calls raise ``ValueError``."""
        self._native.close()

    def __enter__(self) -> "Repository":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        try:
            return f"cairn.Repository({self.root!r})"
        except ValueError:
            return "cairn.Repository(<closed>)"

    @property
    def root(self) -> str:
        """Where the repository is (its directory)."""
        return self._native.root()

    @property
    def id(self) -> str:
        """The repository's id (from its config)."""
        return self._native.id()

    @property
    def warnings(self) -> Tuple[str, ...]:
        """Warnings so far (a damaged config copy, running without a lock)."""
        return tuple(self._native.warnings())

    def snapshot(
        self,
        paths: Union[PathLike, Iterable[PathLike]],
        *,
        kind: str,
        name: str,
        version: Optional[str] = None,
        tags: Union[str, Sequence[str]] = (),
        description: Optional[str] = None,
        force: bool = False,
        strict: bool = False,
        verify: bool = False,
        compression: Optional[int] = None,
        exclude: Union[str, Sequence[str]] = (),
        progress: Optional[ProgressCallback] = None,
    ) -> SnapshotReport:
        """Snapshots ``paths`` (files or directories) as ``kind/name``.

        Like ``cairn snapshot PATHS --kind --name --version --tag
        --description [--force] [--strict] [--verify] [--compression]
        [--exclude]``; ``exclude`` takes gitignore-style patterns.
        Nothing is visible until the snapshot is committed; an error or a
        Ctrl-C leaves the repository as it was.
        """
        raw = self._native.snapshot(
            _paths(paths), kind, name, version, _strings(tags), description,
            force, strict, verify, compression, _strings(exclude), progress,
        )
        return SnapshotReport._from(json.loads(raw))

    def snapshots(
        self, *, kind: Optional[str] = None, name: Optional[str] = None, tag: Optional[str] = None
    ) -> Iterator[Snapshot]:
        """The snapshots matching every given filter, oldest first (``cairn list``)."""
        for d in json.loads(self._native.snapshots(kind, name, tag)):
            yield Snapshot._from(d)

    def resolve(self, selector: Selector) -> Snapshot:
        """The snapshot a selector names (every form of the CLI).

        Raises :class:`cairn.NotFound`, :class:`cairn.AmbiguousSelector` or
        :class:`cairn.InvalidSelector`.
        """
        return Snapshot._from(json.loads(self._native.resolve(_selector(selector))))

    def files(self, selector: Selector) -> Iterator[FileEntry]:
        """The entries of a snapshot, sorted by path (``cairn show``)."""
        for d in json.loads(self._native.files(_selector(selector))):
            yield FileEntry._from(d)

    def restore(
        self,
        selector: Selector,
        dest: PathLike,
        *,
        overwrite: bool = False,
        paths: Union[str, Sequence[str], None] = None,
        ignore_errors: bool = False,
        progress: Optional[ProgressCallback] = None,
    ) -> RestoreReport:
        """Restores a snapshot under ``dest`` (``cairn restore``).

        ``paths`` restores only those paths of the snapshot (``--path``).
        Existing files are refused (:class:`cairn.TargetExists`) unless
        ``overwrite``. Each file is checked against its SHA-256 before it
        is moved into place.
        """
        raw = self._native.restore(
            _selector(selector), os.fspath(dest), overwrite,
            _strings(paths), ignore_errors, progress,
        )
        return RestoreReport._from(json.loads(raw))

    def cat(self, selector: Selector, path: str) -> bytes:
        """The content of one file of a snapshot, checked against its SHA-256."""
        return self._native.cat(_selector(selector), path)

    def verify(
        self, selector: Selector, *, progress: Optional[ProgressCallback] = None
    ) -> VerifyReport:
        """Rebuilds every file of a snapshot in memory and compares its SHA-256.

        Raises :class:`cairn.VerificationError` naming the first file that
        does not match (``failures`` lists all).
        """
        d = json.loads(self._native.verify(_selector(selector), progress))
        failures = [(f["path"], f["error"]) for f in d["failures"]]
        if failures:
            path, error = failures[0]
            more = f" (and {len(failures) - 1} more files)" if len(failures) > 1 else ""
            raise VerificationError(
                f"{error}{more}", path=path, selector=_selector(selector), failures=failures
            )
        return _pick(VerifyReport, d)

    def check(
        self,
        *,
        read_data: bool = False,
        read_data_subset: Optional[float] = None,
        progress: Optional[ProgressCallback] = None,
    ) -> CheckReport:
        """Checks catalog, packs and manifests (``cairn check``).

        ``read_data`` also decompresses and re-hashes every chunk;
        ``read_data_subset`` reads that percentage of packs. Findings are
        returned as data (:attr:`CheckReport.is_clean`), not raised.
        """
        return CheckReport._from(json.loads(self._native.check(read_data, read_data_subset, progress)))

    def forget(
        self,
        *,
        kind: Optional[str] = None,
        name: Optional[str] = None,
        keep_last: Optional[int] = None,
        keep_hourly: Optional[int] = None,
        keep_daily: Optional[int] = None,
        keep_weekly: Optional[int] = None,
        keep_monthly: Optional[int] = None,
        keep_yearly: Optional[int] = None,
        keep_within: Optional[str] = None,
        keep_tag: Union[str, Sequence[str]] = (),
        allow_empty: bool = False,
        dry_run: bool = True,
    ) -> "ForgetPlan":
        """Judges each selected history by retention rules (``cairn forget``).

        With no rule, the repository's stored policies apply. Returns the
        plan; with ``dry_run=False`` it is executed at once (see
        :attr:`ForgetPlan.report`). A plan holds the repository's exclusive
        lock until executed or released (use it as a context manager).
        """
        counts = [keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly]
        native = self._native.forget_plan(
            kind, name, counts, keep_within, _strings(keep_tag), allow_empty
        )
        plan = ForgetPlan(native)
        if not dry_run:
            plan.execute()
        return plan

    def delete(self, selectors: Union[Selector, Sequence[Selector]], *, dry_run: bool = False) -> "ForgetPlan":
        """Removes exactly the snapshots ``selectors`` name (``cairn delete --yes``)."""
        if isinstance(selectors, (str, Snapshot)):
            selectors = [selectors]
        plan = ForgetPlan(self._native.delete_plan([_selector(s) for s in selectors]))
        if not dry_run:
            plan.execute()
        return plan

    def gc(
        self,
        *,
        max_unused: float = 0.1,
        dry_run: bool = False,
        progress: Optional[ProgressCallback] = None,
    ) -> Union["GcPlan", GcReport]:
        """Gives space back (``cairn gc``): deletes unreferenced packs and
        repacks those more than ``max_unused`` (a fraction) unused.

        Returns the :class:`GcReport`; with ``dry_run=True`` the
        :class:`GcPlan` instead, which holds the exclusive lock until
        executed or released.
        """
        plan = GcPlan(self._native.gc_plan(max_unused))
        if dry_run:
            return plan
        return plan.execute(progress=progress)

    def copy(
        self,
        to: "Repository",
        selectors: Union[Selector, Sequence[Selector]] = (),
        *,
        kind: Optional[str] = None,
        name: Optional[str] = None,
        tag: Optional[str] = None,
        dry_run: bool = False,
        progress: Optional[ProgressCallback] = None,
    ) -> CopyReport:
        """Copies snapshots into the repository ``to`` (``cairn copy``): the
        ones ``selectors`` name plus every snapshot of the histories
        ``kind``/``name``/``tag`` select; none of either copies everything.
        Snapshots ``to`` already has are not sent again; with ``dry_run``
        nothing is written. Both must cut chunks alike (same chunker, and
        both unencrypted or under the same key), else
        :class:`cairn.InvalidArgument` says why.
        """
        if isinstance(selectors, (str, Snapshot)):
            selectors = [selectors]
        text = self._native.copy(
            to._native, [_selector(s) for s in selectors], kind, name, tag, dry_run, progress
        )
        return CopyReport._from(json.loads(text))

    def tag(
        self,
        selectors: Union[Selector, Sequence[Selector]],
        *,
        add: Union[str, Sequence[str]] = (),
        remove: Union[str, Sequence[str]] = (),
        set: Optional[Sequence[str]] = None,
        version: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Tuple[Relabeled, ...]:
        """Changes the labels of the snapshots ``selectors`` name (``cairn
        tag``): ``set`` replaces the tags, then ``add``/``remove`` apply;
        ``version`` and ``description`` replace theirs (``description=""``
        removes it). A changed snapshot gets a new id
        (:attr:`Relabeled.new_id`). A selector that matches nothing raises
        :class:`cairn.NotFound` before anything is written.
        """
        if isinstance(selectors, (str, Snapshot)):
            selectors = [selectors]
        text = self._native.tag(
            [_selector(s) for s in selectors],
            _strings(add),
            _strings(remove),
            None if set is None else _strings(set),
            version,
            description,
        )
        return tuple(Relabeled._from(d) for d in json.loads(text))

    def stats(self, *, kind: Optional[str] = None, name: Optional[str] = None) -> Stats:
        """Dedup and compression figures, latest snapshot per history (``cairn stats``)."""
        return Stats._from(json.loads(self._native.stats(kind, name)))

    def diff(self, a: Selector, b: Selector) -> Diff:
        """What changed from snapshot ``a`` to snapshot ``b`` (``cairn diff``)."""
        return Diff._from(json.loads(self._native.diff(_selector(a), _selector(b))))


class ForgetPlan:
    """What a forget (or delete) removes and keeps; nothing changes until
    :meth:`execute`. Holds the exclusive lock until executed or released."""

    def __init__(self, native: "_cairn.ForgetPlan") -> None:
        """Not for direct use: see :meth:`Repository.forget`."""
        self._native = native
        d = json.loads(native.json())
        #: The verdicts per history.
        self.histories: Tuple[HistoryPlan, ...] = tuple(HistoryPlan._from(h) for h in d["histories"])
        #: Histories the rules would empty (refused unless ``allow_empty``).
        self.emptied: Tuple[str, ...] = tuple(d["emptied"])
        #: The report, once executed.
        self.report: Optional[ForgetReport] = None

    @property
    def to_remove(self) -> Tuple[Snapshot, ...]:
        """The snapshots the plan removes."""
        return tuple(v.snapshot for h in self.histories for v in h.snapshots if not v.keep)

    @property
    def to_keep(self) -> Tuple[Snapshot, ...]:
        """The snapshots the plan keeps."""
        return tuple(v.snapshot for h in self.histories for v in h.snapshots if v.keep)

    def execute(self) -> ForgetReport:
        """Removes the snapshots and releases the lock; once only."""
        d = json.loads(self._native.execute())
        self.report = _pick(ForgetReport, d)
        return self.report

    def release(self) -> None:
        """Drops the plan unexecuted and releases the lock."""
        self._native.release()

    def __enter__(self) -> "ForgetPlan":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class GcPlan:
    """What gc would delete and repack; holds the exclusive lock until
    executed or released."""

    def __init__(self, native: "_cairn.GcPlan") -> None:
        """Not for direct use: see :meth:`Repository.gc`."""
        self._native = native
        d = json.loads(native.json())
        #: Packs deleted outright (no live chunks) and packs repacked.
        self.delete_packs: int = len(d["delete"])
        self.repack_packs: int = len(d["repack"])
        #: About how many bytes the gc gives back.
        self.bytes_to_reclaim: int = d["bytes_to_reclaim"]
        #: The plan as the library serialises it (``cairn gc --dry-run --json``).
        self.details: dict = d

    def execute(self, *, progress: Optional[ProgressCallback] = None) -> GcReport:
        """Carries the plan out and releases the lock; once only."""
        return _pick(GcReport, json.loads(self._native.execute(progress)))

    def release(self) -> None:
        """Drops the plan unexecuted and releases the lock."""
        self._native.release()

    def __enter__(self) -> "GcPlan":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _location(location: PathLike) -> str:
    """A local path or a URL, as the native layer takes it."""
    return location if isinstance(location, str) else os.fspath(location)


def _optional_path(path: Optional[PathLike]) -> Optional[str]:
    """``path`` as the native layer takes it (the library reads password
    files: first line, without its line ending, as the CLI reads them)."""
    return None if path is None else os.fspath(path)
