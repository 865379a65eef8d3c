"""Bearer tokens of the membership API: created once, stored as a SHA-256, scoped to segments.

A token is ``sgo_`` followed by 32 random bytes in URL-safe base64, shown once when it
is created. Only its SHA-256 is stored (a random 256-bit secret needs no slow hash),
with its first characters for recognising it in ``segops tokens list``. A token names
the segments it may read, or ``*`` for every segment.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from commands.lookup import find_segment
from segments.errors import SegopsError
from store.db import session_scope
from store.models import ApiToken, utcnow

PREFIX = "sgo_"
ALL = "*"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class TokenView:
    name: str
    prefix: str
    segments: list[str]
    created_at: str
    revoked_at: str | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenView:
        return cls(
            row.name,
            row.prefix,
            list(row.segments),
            row.created_at.isoformat(timespec="seconds"),
            row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def create_token(engine: Engine, *, name: str, segments: list[str]) -> tuple[str, TokenView]:
    """A new token (its text, shown once) for ``segments`` (names, or ``*``)."""
    if not _NAME.fullmatch(name):
        raise SegopsError(f"token name {name!r} must be letters, digits, '.', '_' or '-'")
    if not segments:
        raise SegopsError("name the segments the token may read (--segment NAME, or '*')")
    with session_scope(engine) as session:
        if session.execute(select(ApiToken.id).where(ApiToken.name == name)).first():
            raise SegopsError(f"a token named '{name}' exists already")
        scoped = (
            [ALL] if ALL in segments else sorted({find_segment(session, s).name for s in segments})
        )
        text = PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(name=name, token_hash=digest(text), prefix=text[:10], segments=scoped)
        session.add(row)
        session.flush()
        return text, TokenView.of(row)


def list_tokens(engine: Engine) -> list[TokenView]:
    with session_scope(engine) as session:
        rows = session.execute(select(ApiToken).order_by(ApiToken.name)).scalars()
        return [TokenView.of(r) for r in rows]


def revoke_token(engine: Engine, *, name: str) -> TokenView:
    with session_scope(engine) as session:
        row = session.execute(select(ApiToken).where(ApiToken.name == name)).scalar_one_or_none()
        if row is None:
            raise SegopsError(f"no token named '{name}'")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.add(row)
        return TokenView.of(row)


def authenticate(session: Session, token: str) -> ApiToken | None:
    """The live token with this text, or None (unknown or revoked)."""
    if not token.startswith(PREFIX):
        return None
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == digest(token))
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return row


def may_read(token: ApiToken, segment: str) -> bool:
    return ALL in token.segments or segment in token.segments
