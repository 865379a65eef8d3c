"""The one error type every user-facing failure derives from."""

from __future__ import annotations


class SegopsError(ValueError):
    """A problem the user can fix; ``str()`` is one clear line naming what and where."""
