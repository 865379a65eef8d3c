"""Splitting a slash command's text into its first word and the rest."""

from __future__ import annotations


def split_words(text: str | None) -> tuple[str, str]:
    """(first word lower-cased, the rest) of a command's text."""
    first, _, rest = (text or "").strip().partition(" ")
    return first.strip().lower(), rest.strip()
