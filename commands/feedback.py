"""Field feedback: observations from sales and CS, tagged to a segment.

Text is scrubbed before it is stored (:func:`redact`): e-mail addresses become
``[email]``, phone numbers ``[phone]`` and card numbers ``[card]``. What is kept is
what the rep wrote about the customer, not how to reach them.

:func:`themes` finds what keeps coming up with plain counting: words and two-word
phrases (stopwords removed) counted once per feedback item, so one long rant cannot
make a theme on its own. :func:`digest` gathers the feedback not yet sent to each
owner and marks it sent, in one transaction.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, select

from commands.lookup import find_segment
from segments.errors import SegopsError
from store.db import WRITE_BUDGET, DatabaseBusy, session_scope, write
from store.models import Feedback, Segment

MAX_TEXT = 3000
MAX_FIELD = 500
SENTIMENTS = ("positive", "neutral", "negative")
IMPORTANCES = ("low", "medium", "high")
ORIGINS = ("cli", "slack")

# --- redaction -------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Runs of digit groups separated by one space or dash: card candidates.
_DIGIT_RUN = re.compile(r"(?<![\d+])\d+(?:[ -]\d+)*(?!\d)")
_GROUP = re.compile(r"\d+")
# International: a leading + and 8-15 digits in groups ("+44 20 7946 0958", "+1 (555) 123-4567").
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d(?:[ .\-]?\(?\d+\)?){1,7}(?![\w])")
# Local formats: "(555) 123-4567", "555-123-4567", "555.123.4567", "020 7946 0958",
# "06 12 34 56 78", "0612345678". Plain numbers, years and dates do not match.
_PHONE_LOCAL = re.compile(
    r"(?<![\w.\-/])(?:"
    r"\(\d{2,5}\)[ ]?\d{3,4}[ .\-]?\d{3,4}"
    r"|\d{3}[ .\-]\d{3}[ .\-]\d{4}"
    r"|0\d{1,4}(?:[ .\-]?\d{2,4}){1,4}"
    r")(?![\w\-/]|\.\d)"
)

# International with the 00 exit prefix instead of +: "0044 20 7946 0958", "00442079460958".
_PHONE_00 = re.compile(r"(?<![\w+.\-/])00[1-9](?:[ .\-]?\(?\d+\)?){1,7}(?![\w\-/]|\.\d)")
# US social security numbers as written: 123-45-6789 (never 000, 666 or 9xx first).
_SSN = re.compile(r"(?<![\w\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w\-])")
# IBAN: country, check digits, then 11-30 letters or digits, grouped by four or not.
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![A-Za-z0-9])")


def _iban_valid(candidate: str) -> bool:
    """The ISO 13616 check: the rearranged number is 1 modulo 97."""
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_spans(text: str) -> list[tuple[int, int]]:
    """Spans of 13-19 digit sequences (spaces or dashes allowed) that pass the Luhn check.

    Within a run of digit groups the earliest, longest Luhn-valid stretch of whole
    groups wins, so "4111 1111 1111 1111 20 seats" keeps the "20".
    """
    spans: list[tuple[int, int]] = []
    for run in _DIGIT_RUN.finditer(text):
        groups = [(g.start(), g.end()) for g in _GROUP.finditer(run.group())]
        base = run.start()
        i = 0
        while i < len(groups):
            found = None
            for j in range(len(groups) - 1, i - 1, -1):
                digits = "".join(run.group()[s:e] for s, e in groups[i : j + 1])
                if 13 <= len(digits) <= 19 and _luhn(digits):
                    found = j
                    break
            if found is None:
                i += 1
                continue
            spans.append((base + groups[i][0], base + groups[found][1]))
            i = found + 1
    return spans


def _replace_spans(text: str, spans: list[tuple[int, int]], token: str) -> str:
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + token + text[end:]
    return text


def _digit_count(value: str) -> int:
    return sum(ch.isdigit() for ch in value)


def redact(text: str) -> str:
    """``text`` with e-mail addresses, IBANs, card numbers, US social security numbers and
    phone numbers (``+`` or ``00`` international, or local) replaced.

    >>> redact("mail jo@acme.io or call +44 20 7946 0958, card 4111 1111 1111 1111")
    'mail [email] or call [phone], card [card]'
    >>> redact("20 seats since 2024, renewal 2026-01-31")
    '20 seats since 2024, renewal 2026-01-31'
    """
    text = _EMAIL.sub("[email]", text)
    text = _IBAN.sub(lambda m: "[iban]" if _iban_valid(m.group()) else m.group(), text)
    text = _replace_spans(text, _card_spans(text), "[card]")
    text = _SSN.sub("[ssn]", text)
    text = _PHONE_00.sub(
        lambda m: "[phone]" if 10 <= _digit_count(m.group()) <= 17 else m.group(), text
    )
    text = _PHONE_INTL.sub(
        lambda m: "[phone]" if 8 <= _digit_count(m.group()) <= 15 else m.group(), text
    )
    return _PHONE_LOCAL.sub(
        lambda m: "[phone]" if 9 <= _digit_count(m.group()) <= 12 else m.group(), text
    )


# --- views -----------------------------------------------------------------------------


@dataclass
class FeedbackView:
    """One stored feedback item (text already redacted)."""

    id: int
    segment: str
    author: str
    text: str
    sentiment: str | None
    importance: str | None
    reference: str | None
    permalink: str | None
    origin: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _view(row: Feedback, segment_name: str) -> FeedbackView:
    return FeedbackView(
        id=row.id,
        segment=segment_name,
        author=row.author,
        text=row.text,
        sentiment=row.sentiment,
        importance=row.importance,
        reference=row.reference,
        permalink=row.permalink,
        origin=row.origin,
        created_at=row.created_at.isoformat(timespec="seconds"),
    )


# --- use cases -------------------------------------------------------------------------


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    cleaned = value.strip().lower()
    if not cleaned:
        return None
    if cleaned not in allowed:
        raise SegopsError(f"{name} {value!r} must be one of {', '.join(allowed)}")
    return cleaned


def _optional(name: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > MAX_FIELD:
        raise SegopsError(f"{name} is too long ({len(value)} characters, at most {MAX_FIELD})")
    return value


class FeedbackNotSaved(SegopsError):
    """The feedback could not be stored; ``text`` is what the person wrote, to give back."""

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.text = text


def add_feedback(
    engine: Engine,
    *,
    segment: str,
    author: str,
    text: str,
    sentiment: str | None = None,
    importance: str | None = None,
    reference: str | None = None,
    permalink: str | None = None,
    origin: str,
    budget: float = WRITE_BUDGET,
) -> FeedbackView:
    """Validate, redact and store one observation; nothing is written on error.

    A database that stays busy (SQLite locked by a long write) is retried for up to
    ``budget`` seconds (``SEGOPS_WRITE_BUDGET``); then :class:`FeedbackNotSaved` carries the text
    back so the person can send it again. Stored means acknowledged, never less.
    """
    body = (text or "").strip()
    if not body:
        raise SegopsError("feedback text is empty: say what you heard from the customer")
    if len(body) > MAX_TEXT:
        raise SegopsError(f"feedback text is too long ({len(body)} characters, at most {MAX_TEXT})")
    if not (author or "").strip():
        raise SegopsError("feedback needs an author")
    if origin not in ORIGINS:
        raise SegopsError(f"origin {origin!r} must be one of {', '.join(ORIGINS)}")
    sentiment = _choice("sentiment", sentiment, SENTIMENTS)
    importance = _choice("importance", importance, IMPORTANCES)
    reference = _optional("reference", reference)
    permalink = _optional("permalink", permalink)

    def store(session: Session) -> FeedbackView:
        row_segment = find_segment(session, segment)
        if row_segment.status == "archived":
            raise SegopsError(f"segment '{row_segment.name}' is archived: feedback is closed")
        row = Feedback(
            segment_id=row_segment.id,
            author=author.strip(),
            text=redact(body),
            sentiment=sentiment,
            importance=importance,
            reference=redact(reference) if reference else None,
            permalink=permalink,
            origin=origin,
        )
        session.add(row)
        session.flush()
        return _view(row, row_segment.name)

    try:
        return write(engine, store, budget=budget)
    except DatabaseBusy as busy:
        raise FeedbackNotSaved(
            f"{busy}: your feedback was not stored; send it again", body
        ) from None


def list_feedback(
    engine: Engine, *, segment: str | None = None, limit: int = 50
) -> list[FeedbackView]:
    """Feedback, newest first, optionally for one segment."""
    if limit < 1:
        raise SegopsError("limit must be at least 1")
    with session_scope(engine) as session:
        query = select(Feedback, Segment.name).join(Segment, Segment.id == Feedback.segment_id)
        if segment is not None:
            query = query.where(Feedback.segment_id == find_segment(session, segment).id)
        rows = session.exec(
            query.order_by(Feedback.id.desc()).limit(limit)  # type: ignore[union-attr]
        ).all()
        return [_view(row, name) for row, name in rows]


# --- themes ----------------------------------------------------------------------------

STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because
    been before being below between both but by can can't cannot could couldn't did didn't
    do does doesn't doing don't down during each even ever every few for from further get
    gets getting got had hadn't has hasn't have haven't having he her here hers herself him
    himself his how i i'm i've if in into is isn't it it's its itself just let's like lot
    lots me more most much must my myself need needs no nor not now of off on once one only
    or other our ours ourselves out over own per quite really said same say says she should
    shouldn't so some still such than that that's the their theirs them themselves then
    there there's these they they're this those through to too under until up upon us very
    via want wants was wasn't we we're were weren't what when where which while who whom
    why will with won't would wouldn't yet you your yours yourself also etc told tell asked
    think thinks thought mentioned customer customers client clients prospect prospects
    """.split()
)
_WORD = re.compile(r"[a-z][a-z0-9'+\-]*[a-z0-9+]|[a-z]")
_PLACEHOLDER = re.compile(r"\[(?:email|phone|card)\]")


def _terms(text: str) -> set[str]:
    """Distinct keywords and two-word phrases of one text.

    Stopwords and punctuation break phrases, so a phrase never spans a full stop.
    """
    terms: set[str] = set()
    cleaned = _PLACEHOLDER.sub(".", text.lower()).replace("\u2019", "'")
    for chunk in re.split(r"[.!?;:,()\[\]\n]+", cleaned):
        kept = [t if t not in STOPWORDS and len(t) > 2 else None for t in _WORD.findall(chunk)]
        for i, token in enumerate(kept):
            if token is None:
                continue
            terms.add(token)
            if i + 1 < len(kept) and kept[i + 1] is not None:
                terms.add(f"{token} {kept[i + 1]}")
    return terms


def count_themes(texts: list[str], *, top: int = 5, min_count: int = 2) -> list[tuple[str, int]]:
    """The most frequent keywords and phrases over ``texts``, each counted once per text.

    A phrase beats its own words when it is as frequent as they are (so "slow onboarding"
    is shown rather than "slow" and "onboarding"); themes seen in fewer than
    ``min_count`` texts are not themes.
    """
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_terms(text))
    phrases = {t: c for t, c in counts.items() if " " in t and c >= min_count}
    covered = {
        word for phrase, c in phrases.items() for word in phrase.split() if counts[word] <= c
    }
    ranked = [
        (term, c)
        for term, c in counts.items()
        if c >= min_count and (" " in term or term not in covered)
    ]
    ranked.sort(key=lambda item: (-item[1], " " not in item[0], item[0]))
    return ranked[:top]


def themes(
    session: Session, segment: Segment | str, *, days: int = 30, top: int = 5
) -> list[tuple[str, int]]:
    """Recurring keywords and phrases in a segment's feedback of the last ``days`` days."""
    if isinstance(segment, str):
        segment = find_segment(session, segment)
    since = datetime.now(UTC) - timedelta(days=days)
    texts = session.exec(
        select(Feedback.text).where(Feedback.segment_id == segment.id, Feedback.created_at >= since)
    ).all()
    return count_themes(list(texts), top=top)


# --- digest ----------------------------------------------------------------------------


HIGHLIGHTS = 5
_IMPORTANCE_RANK = {"high": 0, "medium": 1, "low": 2, None: 3}


@dataclass
class OwnerDigest:
    """One owner's new feedback: ``context`` is the ``feedback-digest`` brief context."""

    owner: str
    total: int
    context: dict[str, Any]
    feedback_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _segment_digest(segment: Segment, items: list[Feedback]) -> dict[str, Any]:
    sentiment = dict.fromkeys(SENTIMENTS, 0)
    for row in items:
        if row.sentiment in sentiment:
            sentiment[row.sentiment] += 1
    ranked = sorted(items, key=lambda r: (_IMPORTANCE_RANK.get(r.importance, 3), -r.id))
    return {
        "segment": {"name": segment.name, "title": segment.title, "owner": segment.owner},
        "channel": segment.channel,
        "count": len(items),
        "sentiment": sentiment,
        "themes": [list(t) for t in count_themes([r.text for r in items])],
        "highlights": [
            {
                "author": r.author,
                "text": r.text,
                "sentiment": r.sentiment,
                "importance": r.importance,
                "created_at": r.created_at.isoformat(timespec="seconds"),
                "permalink": r.permalink,
            }
            for r in ranked[:HIGHLIGHTS]
        ],
    }


def digest(engine: Engine, *, since: datetime) -> list[OwnerDigest]:
    """Undigested feedback created at or after ``since``, grouped by owner, then marked sent.

    One transaction; use :func:`collect_digest` to queue the messages in the same one.
    """
    with session_scope(engine) as session:
        return collect_digest(session, since=since)


def collect_digest(
    session: Session, *, since: datetime, now: datetime | None = None
) -> list[OwnerDigest]:
    """:func:`digest` inside the caller's transaction (does not commit).

    Each item is claimed with a conditional update (``digested_at IS NULL``), so two
    concurrent digests never report the same item twice.
    """
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    rows = session.exec(
        select(Feedback, Segment)
        .join(Segment, Segment.id == Feedback.segment_id)
        .where(
            Feedback.digested_at.is_(None),  # type: ignore[union-attr]
            Feedback.created_at >= since,
        )
        .order_by(Feedback.id)  # type: ignore[arg-type]
    ).all()
    claimed: set[int] = set()
    for row, _ in rows:
        result = session.exec(
            update(Feedback)
            .where(Feedback.id == row.id, Feedback.digested_at.is_(None))  # type: ignore[union-attr]
            .values(digested_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            claimed.add(row.id)
    by_segment: dict[int, tuple[Segment, list[Feedback]]] = {}
    for row, seg in rows:
        if row.id in claimed:
            by_segment.setdefault(seg.id, (seg, []))[1].append(row)
    by_owner: dict[str, list[tuple[Segment, list[Feedback]]]] = defaultdict(list)
    for seg, items in by_segment.values():
        by_owner[seg.owner].append((seg, items))
    out = []
    for owner, groups in sorted(by_owner.items()):
        groups.sort(key=lambda g: (-len(g[1]), g[0].name))
        total = sum(len(items) for _, items in groups)
        out.append(
            OwnerDigest(
                owner=owner,
                total=total,
                context={
                    "since": since.date().isoformat(),
                    "until": now.date().isoformat(),
                    "total": total,
                    "segments": [_segment_digest(seg, items) for seg, items in groups],
                },
                feedback_ids=sorted(r.id for _, items in groups for r in items),
            )
        )
    return out
