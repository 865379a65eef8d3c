"""The one-line Slack form of a proposal and its parser, :func:`parse_proposal_text`.

``/segment propose`` takes one of::

    trial rule: plan = 'trial' and seats >= 3 reason: reps ignore one-seat trials
    trial rename: trials reason: plural like the others
    trial archive reason: replaced by self-serve

A rule change may end with its hypothesis, ``expect: KPI up|down N% in N days``::

    trial rule: seats >= 3 reason: focus expect: logins_30d up 10% in 28 days
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from segments.errors import SegopsError

USAGE = (
    "usage: NAME rule: NEW RULE reason: WHY | NAME rename: NEW-NAME reason: WHY "
    "| NAME archive reason: WHY"
)


@dataclass(frozen=True)
class ProposalRequest:
    """A parsed ``/segment propose`` text."""

    segment: str
    kind: str
    changes: dict[str, Any]
    reason: str


_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_HEAD = re.compile(r"\s*(?P<name>[^\s:]+)\s+(?P<verb>rule|rename|archive)\b\s*:?", re.I)
_REASON = re.compile(r"reason\s*:", re.I)
_EXPECT = re.compile(r"\s+expect\s*:\s*(?P<body>.*)$", re.I | re.S)
_HYPOTHESIS = re.compile(
    r"(?P<kpi>[A-Za-z_][\w.]*)\s+(?P<dir>up|down)\s+(?P<mde>\d+(?:\.\d+)?)\s*%"
    r"\s+(?:in|within)\s+(?P<days>\d+)\s*d(?:ays?)?\s*$",
    re.I,
)
EXPECT_USAGE = (
    "expect: KPI up|down N% in N days (for example: expect: logins_30d up 10% in 28 days)"
)


def _hypothesis(reason: str) -> tuple[str, dict[str, Any] | None]:
    """Split a trailing ``expect: ...`` off the reason, as a hypothesis."""
    found = _EXPECT.search(reason)
    if found is None:
        return reason, None
    match = _HYPOTHESIS.match(found.group("body").strip())
    if match is None:
        raise SegopsError(f"cannot read the expectation: {EXPECT_USAGE}")
    hypothesis = {
        "kpi": match.group("kpi"),
        "direction": "increase" if match.group("dir").lower() == "up" else "decrease",
        "mde": float(match.group("mde")) / 100,
        "window_days": int(match.group("days")),
    }
    return reason[: found.start()].strip(), hypothesis


def _find_reason(text: str) -> int | None:
    """Offset of the first ``reason:`` outside quotes, or None."""
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif (i == 0 or not text[i - 1].isalnum()) and _REASON.match(text, i):
            return i
        i += 1
    return None


def parse_proposal_text(text: str) -> ProposalRequest:
    """Parse ``NAME rule: RULE reason: WHY`` (or ``rename: NEW`` / ``archive``)."""
    # Slack escapes &, < and > in command text and may curl quotes.
    cleaned = html.unescape(text or "").translate(_QUOTES).strip()
    head = _HEAD.match(cleaned)
    if not head:
        raise SegopsError(f"cannot read the proposal: {USAGE}")
    name, verb = head.group("name"), head.group("verb").lower()
    body = cleaned[head.end() :]
    at = _find_reason(body)
    if at is None:
        raise SegopsError(f"a proposal needs a reason ('reason: WHY'): {USAGE}")
    value, reason = body[:at].strip(), body[at:].split(":", 1)[1].strip()
    if not reason:
        raise SegopsError(f"the reason is empty: {USAGE}")
    if verb == "rule":
        if not value:
            raise SegopsError(f"the new rule is empty: {USAGE}")
        reason, hypothesis = _hypothesis(reason)
        if not reason:
            raise SegopsError(f"the reason is empty: {USAGE}")
        changes: dict[str, Any] = {"rule": value}
        if hypothesis is not None:
            changes["hypothesis"] = hypothesis
        return ProposalRequest(name, "edit", changes, reason)
    if verb == "rename":
        if not value or len(value.split()) != 1:
            raise SegopsError(f"rename needs one new name: {USAGE}")
        return ProposalRequest(name, "rename", {"name": value}, reason)
    if value:
        raise SegopsError(f"unexpected text after 'archive': {value!r}: {USAGE}")
    return ProposalRequest(name, "archive", {"status": "archived"}, reason)


DERIVE_USAGE = (
    "`merge <new> <segment> <segment>… rule: <rule> reason: <why>` or "
    "`split <new> <parent> rule: <rule> reason: <why>`"
)
_RULE = re.compile(r"\brule\s*:", re.I)


@dataclass
class DeriveRequest:
    """A merge or split asked for in one line: the new name, its sources, rule, reason."""

    new: str
    sources: list[str]
    rule: str
    reason: str


def parse_derive_text(text: str) -> DeriveRequest:
    """Parse ``NEW SOURCE… rule: RULE reason: WHY`` (after ``merge`` or ``split``)."""
    cleaned = html.unescape(text or "").translate(_QUOTES).strip()
    at_rule = _RULE.search(cleaned)
    if at_rule is None:
        raise SegopsError(f"a merge or split needs the new segment's rule: {DERIVE_USAGE}")
    names = cleaned[: at_rule.start()].replace(",", " ").split()
    body = cleaned[at_rule.end() :]
    at = _find_reason(body)
    if at is None:
        raise SegopsError(f"a merge or split needs a reason ('reason: WHY'): {DERIVE_USAGE}")
    rule, reason = body[:at].strip(), body[at:].split(":", 1)[1].strip()
    if len(names) < 2 or not rule or not reason:
        raise SegopsError(f"cannot read the merge or split: {DERIVE_USAGE}")
    return DeriveRequest(names[0].lower(), [n.lower() for n in names[1:]], rule, reason)
