"""Numbers, columns, rule clauses and findings in plain words, from the workspace's labels.

A *label* is the optional description of a column, feature or score in the workspace
(``labels:`` in the YAML, :class:`segments.workspace.Label`): ``label`` (its name in
words), ``format`` (``number``, ``count``, ``currency``, ``percent``, ``days``), ``unit``
(a word after the value, or the currency symbol) and ``good_direction`` (``up`` or
``down``). Every function takes the labels as a plain ``{name: {...}}`` mapping and
falls back to the column name made readable (``failed_payments_60d`` -> "Failed
payments 60d") when a name has none.

>>> spec = {"label": "Failed payments in 60 days", "unit": "per account", "good_direction": "down"}
>>> movement(0.563, 0.254, spec)
'0.25 → 0.56 per account, up 121 %'

The statistics behind a finding (PSI, effect size, z) are kept for a "details" line;
the finding itself says what changed and which limit it crossed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from segments.drift import DriftThresholds
from segments.errors import SegopsError
from segments.rules.parser import parse
from segments.rules.tree import All, AnyOf, Condition, InSegment, Not, Rule

Spec = Mapping[str, Any]
Labels = Mapping[str, Spec]
_LIMITS = DriftThresholds()
_VERBS = {
    "=": "is",
    "!=": "is not",
    "<": "below",
    "<=": "at most",
    ">": "above",
    ">=": "at least",
    "in": "is",
    "not in": "is not",
    "between": "between",
}


def readable(name: str) -> str:
    """A column name as words: ``failed_payments_60d`` -> ``Failed payments 60d``."""
    text = str(name).replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


def spec_of(name: str | None, labels: Labels | None) -> dict[str, Any]:
    """The label of ``name`` (an empty spec when it has none)."""
    if not name or not labels:
        return {}
    return dict(labels.get(name) or labels.get(str(name).rsplit(".", 1)[-1]) or {})


def label(name: str | None, labels: Labels | None = None) -> str:
    """The words for a column: its label, else its name made readable."""
    if not name:
        return ""
    return spec_of(name, labels).get("label") or readable(str(name).rsplit(".", 1)[-1])


def number(value: float | int | None) -> str:
    """A number as people read it: thousands separators, two significant decimals at most."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    size = abs(value)
    if isinstance(value, int) or (size >= 100 and float(value).is_integer()):
        return f"{int(value):,}".replace("-", "−")
    digits = 0 if size >= 1000 else 1 if size >= 100 else 2
    text = f"{value:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.replace("-", "−")


def amount(value: float | int | None, spec: Spec | None = None) -> str:
    """A value with its unit: ``$413``, ``12.5 %``, ``69 days``, ``0.56 per account``."""
    spec = spec or {}
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    fmt = spec.get("format") or "number"
    unit = spec.get("unit")
    if fmt == "currency":
        symbol = unit or "$"
        text = number(round(value) if abs(value) >= 100 else value)
        return f"−{symbol}{text[1:]}" if text.startswith("−") else f"{symbol}{text}"
    if fmt == "percent":
        return f"{number(value)} %"
    if fmt == "days":
        shown = number(round(value, 1) if abs(value) < 10 else round(value))
        return f"{shown} {'day' if shown == '1' else 'days'}"
    if fmt == "count":
        shown = number(value if isinstance(value, int) else round(value, 1))
        return f"{shown} {unit}" if unit else shown
    return f"{number(value)} {unit}" if unit else number(value)


def change_pct(value: float | None, previous: float | None) -> float | None:
    """The relative change in percent, or None when it cannot be told."""
    if value is None or previous in (None, 0):
        return None
    return 100.0 * (value - previous) / abs(previous)


def direction_words(pct: float | None, *, points: bool = False) -> str:
    """``up 121 %``, ``down 4 %``, ``unchanged``."""
    if pct is None:
        return ""
    shown = round(pct) if abs(pct) >= 10 else round(pct, 1)
    if shown == 0:
        return "unchanged"
    word = "up" if pct > 0 else "down"
    return f"{word} {number(abs(shown))} {'pts' if points else '%'}"


def verdict(value: float | None, previous: float | None, spec: Spec | None) -> str | None:
    """``better`` or ``worse`` when the label says which way is good, else None."""
    good = (spec or {}).get("good_direction")
    if good not in ("up", "down") or value is None or previous is None or value == previous:
        return None
    rose = value > previous
    return "better" if rose == (good == "up") else "worse"


def movement(value: float | None, previous: float | None, spec: Spec | None = None) -> str:
    """``0.25 → 0.56 per account, up 121 %`` (or the value alone without a previous one)."""
    spec = spec or {}
    if previous is None:
        return amount(value, spec)
    pct = change_pct(value, previous)
    if spec.get("format") == "percent" and value is not None:
        words = direction_words(value - previous, points=True)
    else:
        words = direction_words(pct)
    before, after = amount(previous, spec), amount(value, spec)
    unit = spec.get("unit")
    if unit and spec.get("format", "number") in ("number", "count") and before.endswith(unit):
        before = before[: -len(unit)].rstrip()
    return f"{before} → {after}" + (f", {words}" if words else "")


def members(size: int | None, previous: int | None) -> str:
    """``472 → 647 members, up 37 %``."""
    if size is None:
        return "hidden (under the privacy floor)"
    if previous is None:
        return f"{number(size)} members"
    return movement(size, previous, {"unit": "members", "format": "count"})


def definition_notice(stats: Mapping[str, Any] | None) -> str:
    """``definition changed since last refresh (v3 -> v4), preview: 990 members`` when the
    numbers of ``stats`` (``SegmentStats.to_dict``, as shown) were computed by an older
    version than the current one; "" otherwise. The preview is the approved proposal's
    measured size, left out when it was not measured or is hidden."""
    if not stats or not stats.get("definition_changed"):
        return ""
    text = (
        f"definition changed since last refresh "
        f"(v{stats.get('version')} -> v{stats.get('current_version')})"
    )
    expected = stats.get("expected_size")
    if expected is not None:
        text += f", preview: {number(expected)} members"
    return text


# -- rule clauses -------------------------------------------------------------------


def _value(value: Any, spec: Spec) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):  # a threshold: no "per account" after it
        plain = spec.get("format") in (None, "number", "count")
        return number(value) if plain else amount(value, spec)
    return str(value)


def _inline(name: str) -> str:
    """A label inside a sentence: lower-cased unless it starts with an acronym (MRR, SSO)."""
    return name if name[1:2].isupper() else name[:1].lower() + name[1:]


def _condition(cond: Condition, labels: Labels | None, negated: bool = False) -> str:
    spec = spec_of(cond.column, labels)
    name = _inline(label(cond.column, labels))
    if cond.op in ("is null", "is not null"):
        missing = (cond.op == "is null") != negated
        return f"{name} {'unknown' if missing else 'known'}"
    if isinstance(cond.value, bool) and cond.op in ("=", "!="):
        yes = (cond.op == "=") == cond.value
        return f"{name}: {'yes' if yes != negated else 'no'}"
    verb = _VERBS[cond.op]
    if negated:
        verb = {"is": "is not", "is not": "is", "below": "at least", "at least": "below"}.get(
            verb, {"above": "at most", "at most": "above"}.get(verb, f"not {verb}")
        )
    if cond.op == "between":
        low, high = cond.value  # type: ignore[misc]
        return f"{name} {verb} {_value(low, spec)} and {_value(high, spec)}"
    if isinstance(cond.value, tuple):
        values = [_value(v, spec) for v in cond.value]
        listed = values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]
        return f"{name} {verb} {listed}"
    return f"{name} {verb} {_value(cond.value, spec)}"


def clause(
    rule: Rule, labels: Labels | None = None, titles: Mapping[str, str] | None = None
) -> str:
    """A rule (or one clause of it) in plain words with labels and units.

    ``failed_payments_60d >= 2`` -> "Failed payments in 60 days at least 2 per account";
    ``in_segment('trial')`` -> "in Trials in flight" when ``titles`` names it.
    """
    text = _clause(rule, labels, titles or {}, None)
    return text[:1].upper() + text[1:]


def _clause(
    rule: Rule, labels: Labels | None, titles: Mapping[str, str], parent: str | None
) -> str:
    if isinstance(rule, Condition):
        return _condition(rule, labels)
    if isinstance(rule, InSegment):
        return f"in {titles.get(rule.name) or rule.name}"
    if isinstance(rule, Not):
        if isinstance(rule.item, Condition):
            return _condition(rule.item, labels, negated=True)
        if isinstance(rule.item, InSegment):
            return f"not in {titles.get(rule.item.name) or rule.item.name}"
        return "not " + _clause(rule.item, labels, titles, "not")
    if isinstance(rule, All):
        text = " and ".join(_clause(i, labels, titles, "and") for i in rule.items)
        return f"({text})" if parent == "not" else text
    assert isinstance(rule, AnyOf)
    text = " or ".join(_clause(i, labels, titles, "or") for i in rule.items)
    return f"({text})" if parent in ("and", "not") else text


def clause_text(
    text: str, labels: Labels | None = None, titles: Mapping[str, str] | None = None
) -> str:
    """:func:`clause` of a rule written as text; text that is not a rule is returned as is."""
    try:
        return clause(parse(text), labels, titles)
    except SegopsError:
        return text


# -- findings -----------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{number(round(100 * value))} %"


def finding(alert: Mapping[str, Any], labels: Labels | None = None) -> dict[str, str]:
    """One drift alert in words: ``what`` changed, ``why`` it is this severe, ``details``.

    ``alert`` is ``{kind, severity, message, details}``; without details the stored
    message is the ``what``.
    """
    kind, severity = alert.get("kind"), alert.get("severity") or "warning"
    d = alert.get("details") or {}
    what, why, details = str(alert.get("message") or ""), "", ""
    if kind == "size_change" and d.get("previous_size") is not None:
        what = "Members: " + members(d.get("size"), d.get("previous_size"))
        if severity == "critical":
            why = f"members changed by {_pct(_LIMITS.size_critical_change)} or more"
        else:
            why = (
                f"members changed by more than {_pct(_LIMITS.size_warning_change)} "
                f"(critical from {_pct(_LIMITS.size_critical_change)})"
            )
        change = d.get("change") or 0
        details = f"{'+' if change > 0 else ''}{number(change)} members"
    elif kind == "control_limit" and d.get("upper") is not None:
        side = "above" if (d.get("size") or 0) > d["upper"] else "below"
        low, high = max(0, round(d["lower"])), round(d["upper"])
        count = len(d.get("history") or [])
        what = (
            f"Members: {number(d.get('size'))}, {side} the usual range of "
            f"{number(low)}–{number(high)}"
        )
        why = f"outside the range of the last {count} refreshes"
        details = f"control limits: mean {number(round(d.get('mean') or 0))} ± 3σ (XmR)"
    elif kind == "composition" and d.get("bins"):
        column = d.get("column")
        top = max(d["bins"], key=lambda b: abs(b["current"] - b["previous"]))
        pts = round(100 * (top["current"] - top["previous"]))
        what = (
            f"{label(column, labels)}: {top['label']} went from {_pct(top['previous'])} "
            f"to {_pct(top['current'])} of members ({'+' if pts > 0 else '−'}{abs(pts)} pts)"
        )
        limit = _LIMITS.psi_critical if severity == "critical" else _LIMITS.psi_warning
        why = f"the mix of members by {label(column, labels).lower()} changed " + (
            "a lot" if severity == "critical" else "more than chance explains"
        )
        details = f"PSI {number(d.get('psi'))} (limit {number(limit)}"
        if d.get("noise_limit") is not None:
            details += f", noise {number(round(d['noise_limit'], 3))}"
        details += ")"
    elif kind == "kpi" and d.get("mean") is not None:
        column = d.get("column")
        spec = spec_of(column, labels)
        what = f"{label(column, labels)}: {movement(d.get('mean'), d.get('previous_mean'), spec)}"
        better = verdict(d.get("mean"), d.get("previous_mean"), spec)
        if better:
            what += f" ({better})"
        effect = d.get("effect_size")
        limit = _LIMITS.kpi_critical_effect if severity == "critical" else _LIMITS.kpi_min_effect
        floor = _pct(_LIMITS.kpi_min_relative_change)
        why = (
            f"the average moved by more than {floor}, a large change for how much accounts differ"
            if severity == "critical"
            else f"the average moved by more than {floor}, beyond what chance explains"
        )
        parts = []
        if effect is not None:
            parts.append(f"effect size {number(round(effect, 2))} (limit {number(limit)})")
        if d.get("z") is not None:
            parts.append(f"z {number(round(d['z'], 1))}")
        details = ", ".join(parts)
    elif kind == "min_size" and d.get("min_size") is not None:
        what = f"Members: {number(d.get('size'))}, below the minimum of {number(d['min_size'])}"
        why = "no members at all" if not d.get("size") else "under the segment's minimum size"
    return {"what": what, "why": why, "details": details}


def headline(title: str, alerts: list[Mapping[str, Any]], labels: Labels | None = None) -> str:
    """The notification line of a drift alert: ``Churn risk +37 % to 647 members``."""
    for alert in alerts:
        d = alert.get("details") or {}
        if alert.get("kind") == "size_change" and d.get("previous_size"):
            pct = change_pct(d["size"], d["previous_size"]) or 0.0
            sign = "+" if pct > 0 else "−"
            return f"{title} {sign}{number(abs(round(pct)))} % to {number(d['size'])} members"
    for alert in alerts:
        if alert.get("details"):
            found = finding(alert, labels)["what"]
            if found:
                return (
                    f"{title}: {found[:1].lower()}{found[1:]}"
                    if alert.get("kind") != "kpi"
                    else f"{title}: {found}"
                )
    first = alerts[0].get("message") if alerts else ""
    return f"{title}: {first}" if first else f"Drift in {title}"
