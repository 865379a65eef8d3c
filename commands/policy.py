"""The privacy floor: a segment size under it is never shown.

:func:`is_hidden` says whether a size falls under the floor; :func:`visible_size` is
the size as it may be shown (None when hidden or unknown). ``commands.persona``
applies the same rule to the persona briefs' stats.
"""

from __future__ import annotations


def is_hidden(size: int | None, floor: int) -> bool:
    """Whether ``size`` is under the privacy ``floor`` (an unknown size is not hidden)."""
    return size is not None and size < floor


def visible_size(size: int | None, floor: int) -> int | None:
    """``size`` as it may be shown: None when it is unknown or under the privacy ``floor``."""
    return None if size is None or is_hidden(size, floor) else size
