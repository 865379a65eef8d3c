"""User-facing errors raised by the use cases."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from segments.errors import SegopsError


class UnknownSegment(SegopsError):
    """No segment by that name; offers the closest names."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        self.name = name
        self.suggestions = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        hint = ""
        if self.suggestions:
            hint = " (did you mean " + " or ".join(f"'{s}'" for s in self.suggestions) + "?)"
        super().__init__(f"unknown segment '{name}'{hint}")


class NotAuthorised(SegopsError):
    """The user may not do this."""


class StaleProposal(SegopsError):
    """The segment changed since the proposal was made."""


class AlreadyDecided(SegopsError):
    """The proposal was already approved or rejected."""


class Refused(SegopsError):
    """A guardrail refused the change (for example archiving a core segment without a reason)."""
