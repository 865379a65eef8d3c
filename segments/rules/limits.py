"""Bounds on the size of one rule, so that a hostile or runaway rule fails fast and clearly.

A rule's text is at most :data:`MAX_RULE_LENGTH` characters (checked before parsing), its
tree nests at most :data:`MAX_RULE_DEPTH` levels (a lone condition is one level, each
``and``/``or``/``not`` around it adds one; brackets that group nothing new add none), and
it holds at most :data:`MAX_RULE_CONDITIONS` conditions (``in_segment`` counts as one).
The tree nodes check depth and conditions as they are built, so the parser and the JSON
form stop at the first node over a limit, and no walk over a tree can recurse deeper than
the limit allows.
"""

from __future__ import annotations

from segments.schema import RuleError

MAX_RULE_LENGTH = 20_000
MAX_RULE_DEPTH = 50
MAX_RULE_CONDITIONS = 500


class RuleLimitError(RuleError):
    """A rule over one of the limits; the message names the limit."""


def too_long(length: int) -> RuleLimitError:
    return RuleLimitError(
        f"rule is {length:,} characters long; the limit is {MAX_RULE_LENGTH:,} characters"
    )


def too_deep() -> RuleLimitError:
    return RuleLimitError(f"rule nests more than {MAX_RULE_DEPTH} levels deep (the limit)")


def too_many_conditions() -> RuleLimitError:
    return RuleLimitError(f"rule has more than {MAX_RULE_CONDITIONS} conditions (the limit)")
