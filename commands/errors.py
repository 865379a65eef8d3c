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


def person(user: str) -> str:
    """How an error names a person: ``@U0123``. The error lists the ids it names in
    ``users`` so a transport can turn them into mentions (Slack) or leave them (CLI)."""
    return f"@{user}"


class NamesPeople(SegopsError):
    """An error whose text names people with :func:`person`; ``users`` lists their ids."""

    def __init__(self, message: str, *, users: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.users = tuple(dict.fromkeys(users))


class NotAuthorised(NamesPeople):
    """The user may not do this."""


class StaleProposal(SegopsError):
    """The segment changed since the proposal was made."""


class AlreadyDecided(NamesPeople):
    """The proposal was already approved or rejected."""


class Refused(SegopsError):
    """A guardrail refused the change (for example archiving a core segment without a reason)."""


class NotSaved(SegopsError):
    """The database stayed busy past the write budget: nothing was saved, say so and retry."""
