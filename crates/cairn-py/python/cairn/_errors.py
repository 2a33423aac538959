"""The ``cairn`` exception hierarchy.

Every error the library reports is raised as one of these. The message is the
library's own, the text the CLI prints after ``cairn: error:``; the attributes
say what the error concerns, so code need not parse the message.
"""

from __future__ import annotations

from typing import Optional, Sequence

__all__ = [
    "CairnError",
    "ConfigError",
    "NotFound",
    "AmbiguousSelector",
    "InvalidSelector",
    "VerificationError",
    "RepositoryLocked",
    "RepositoryExists",
    "TargetExists",
    "CorruptRepository",
    "WrongPassword",
    "InvalidArgument",
]


class CairnError(Exception):
    """Base class of every cairn error.

    Attributes:
        message: the library's message (also ``str(error)``).
        path: the file, directory or object key concerned, if any.
        id: the snapshot, pack or chunk id concerned, if any.
        selector: the snapshot selector concerned, if any.
        candidates: for a selector, the snapshots it could have meant.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Optional[str] = None,
        id: Optional[str] = None,
        selector: Optional[str] = None,
        candidates: Sequence[str] = (),
        **extra: object,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.id = id
        self.selector = selector
        self.candidates = tuple(candidates)
        for key, value in extra.items():
            setattr(self, key, value)


class NotFound(CairnError, LookupError):
    """No repository, snapshot or file at the given path / selector."""


class AmbiguousSelector(CairnError, LookupError):
    """A selector matches more than one snapshot; ``candidates`` lists them."""


class InvalidSelector(CairnError, ValueError):
    """A selector that cannot be parsed (e.g. a bad date after ``@``)."""


class VerificationError(CairnError):
    """Restored or verified content does not match its recorded SHA-256.

    ``path`` names the (first) file; ``failures`` lists every
    ``(path, message)`` pair of a :meth:`cairn.Repository.verify`.
    """

    def __init__(self, message: str, *, failures: Sequence[tuple] = (), **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.failures = tuple(failures)


class RepositoryLocked(CairnError):
    """Another process holds a conflicting lock; ``holders`` says who."""

    def __init__(self, message: str, *, holders: Sequence[str] = (), **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.holders = tuple(holders)


class RepositoryExists(CairnError, FileExistsError):
    """``init`` found a repository (or a non-empty directory) at ``path``."""


class TargetExists(CairnError, FileExistsError):
    """A restore would replace ``path``; pass ``overwrite=True`` to allow it."""


class CorruptRepository(CairnError):
    """Stored data is damaged (a pack, chunk, manifest or the catalog).

    ``path`` is the snapshot file or object key, ``id`` the pack or chunk.
    ``repo.check()`` reports what is damaged; ``cairn repair`` salvages it.
    """


class WrongPassword(CairnError):
    """An encrypted repository's password is wrong or missing (``path`` names
    the repository); nothing was written."""


class InvalidArgument(CairnError, ValueError):
    """An argument the library refuses (a count of 0, an empty path list, ...)."""


class ConfigError(CairnError, ValueError):
    """A runner config file (:func:`cairn.run`) that does not validate:
    ``path`` names the file; the message lists every problem with its line
    and key, as ``cairn config check`` prints them."""
