"""The exceptions threadinject defines (shared by both backends)."""

from __future__ import annotations

__all__ = ["ThreadKilled", "ThreadNotFoundError"]


class ThreadKilled(BaseException):
    """Raised inside a thread by :func:`threadinject.kill`.

    It derives from :class:`BaseException`, not :class:`Exception`, so that
    ``except Exception:`` in the target does not swallow it, and a thread that
    ``kill`` ended is not reported by :data:`threading.excepthook`.
    """

    __module__ = "threadinject"


class ThreadNotFoundError(LookupError):
    """The thread given is not running: not started, finished or unknown."""

    __module__ = "threadinject"
