"""Deterministic holdout assignment by a salted hash of the entity key.

``holdout_mask(keys, salt=..., share=0.1)`` hashes every key with SipHash (pandas'
``hash_array``, keyed by 16 bytes derived from the salt), maps the 64-bit hash to
[0, 1) and puts the key in the holdout when that number is below ``share``. The same
key and salt always land on the same side, whatever else is in the data, so an entity
keeps its side across refreshes; a new salt (one per experiment) reshuffles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pandas as pd
from pandas.util import hash_array

from segments.errors import SegopsError

MAX_SHARE = 0.5


def check_share(share: float) -> float:
    """The holdout share, if it is in (0, 0.5]; SegopsError otherwise."""
    if not (0 < share <= MAX_SHARE):
        raise SegopsError(f"holdout share {share} must be above 0 and at most {MAX_SHARE}")
    return float(share)


def _hash_key(salt: str) -> str:
    # hash_array takes a 16-character key; derive it from the salt of any length.
    return hashlib.sha256(salt.encode()).hexdigest()[:16]


def unit_position(keys: Iterable[str] | np.ndarray | pd.Index, *, salt: str) -> np.ndarray:
    """Each key's place in [0, 1), uniform and fixed by (key, salt)."""
    values = np.asarray(pd.Index(keys).astype(str), dtype=object)
    hashed = hash_array(values, hash_key=_hash_key(salt), categorize=False)
    # The top 53 bits fit a float exactly: no rounding ties at the share boundary.
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def holdout_mask(
    keys: Iterable[str] | np.ndarray | pd.Index, *, salt: str, share: float
) -> np.ndarray:
    """Boolean mask, True where the key is in the holdout."""
    return unit_position(keys, salt=salt) < check_share(share)
