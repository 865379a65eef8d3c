"""The proposed definition: the kinds of change, building the new ``SegmentDef`` from the
current one, and validating it against the catalog (references, dependants, cycles).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, select

from segments import rules
from segments.errors import SegopsError
from segments.workspace import (
    SegmentDef,
    Workspace,
    WorkspaceError,
    check_slack_ids,
    check_workspace,
)
from store.models import Segment, SegmentVersion

KINDS = ("edit", "rename", "archive", "persona")
# Fields an edit may change; the name and status change through rename and archive.
EDITABLE = frozenset(SegmentDef.model_fields) - {"name", "status", "based_on"}


def _field_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "definition"
    return f"{where}: {err['msg'].removeprefix('Value error, ')}"


def build_definition(current: SegmentDef, kind: str, changes: dict[str, Any]) -> SegmentDef:
    """The definition ``current`` would become under ``changes`` (validated fields)."""
    name = current.name
    if kind not in KINDS:
        raise SegopsError(f"proposal kind {kind!r} must be one of {', '.join(KINDS)}")
    if not isinstance(changes, dict):
        raise SegopsError("changes must be a mapping of field -> new value")
    allowed = {
        "edit": EDITABLE,
        "rename": {"name"},
        "archive": {"status"},
        "persona": {"persona"},
    }[kind]
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise SegopsError(
            f"a {kind} proposal cannot change {', '.join(unknown)} "
            f"(it may change {', '.join(sorted(allowed))})"
        )
    if kind == "archive":
        if current.status == "archived":
            raise SegopsError(f"segment '{name}' is already archived")
        changes = {"status": "archived"}
    if kind == "rename" and not str(changes.get("name") or "").strip():
        raise SegopsError("a rename proposal needs the new name")
    if kind == "edit" and not changes:
        raise SegopsError(f"nothing to change in segment '{name}'")
    data = current.model_dump(mode="json")
    if kind == "edit" and "hypothesis" not in changes:
        data.pop("hypothesis", None)  # a hypothesis belongs to the change that states it
    for key, value in changes.items():
        if key == "persona":
            if not isinstance(value, dict):
                raise SegopsError("persona changes must be a mapping of persona fields")
            data["persona"] = {**data["persona"], **value}
        else:
            data[key] = value.strip() if isinstance(value, str) else value
    try:
        definition = SegmentDef.model_validate(data)
    except ValidationError as exc:
        raise SegopsError(f"segment '{name}': {_field_error(exc)}") from None
    try:
        rules.parse(definition.rule)
    except SegopsError as exc:
        raise SegopsError(f"segment '{name}': rule: {exc}") from None
    return definition


def active_definitions(session: Session) -> dict[str, SegmentDef]:
    """The current definition of every active segment, by name."""
    rows = session.exec(
        select(Segment.name, SegmentVersion.definition)
        .join(SegmentVersion, SegmentVersion.id == Segment.current_version_id)
        .where(Segment.status == "active")
    ).all()
    return {name: SegmentDef.model_validate(definition) for name, definition in rows}


def dependents(definitions: dict[str, SegmentDef], target: str) -> list[str]:
    """Active segments whose rule references ``target`` with ``in_segment``."""
    return sorted(
        name
        for name, d in definitions.items()
        if name != target and target in rules.dependencies(rules.parse(d.rule))
    )


def _swap(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        if node.get("op") == "in_segment" and node.get("segment") == old:
            return {**node, "segment": new}
        return {key: _swap(value, old, new) for key, value in node.items()}
    if isinstance(node, list):
        return [_swap(item, old, new) for item in node]
    return node


def renamed_reference(definition: SegmentDef, old: str, new: str) -> SegmentDef:
    """``definition`` with every ``in_segment(old)`` of its rule naming ``new`` instead."""
    tree = rules.rule_from_dict(_swap(definition.tree().to_dict(), old, new))
    return definition.model_copy(update={"rule": rules.to_text(tree)})


def rename_references(
    definitions: dict[str, SegmentDef], old: str, new: str
) -> dict[str, SegmentDef]:
    """``definitions`` (by name) as they are after renaming ``old`` to ``new``."""
    out: dict[str, SegmentDef] = {}
    for name, definition in definitions.items():
        if name == old:
            definition = definition.model_copy(update={"name": new})
            name = new
        if old in rules.dependencies(definition.tree()):
            definition = renamed_reference(definition, old, new)
        out[name] = definition
    return out


def check_references(
    definitions: dict[str, SegmentDef], current: SegmentDef, new: SegmentDef
) -> None:
    """Archiving must not break another segment's ``in_segment`` (a rename rewrites those
    references instead: :mod:`commands.renaming`)."""
    if new.status == "active":
        return
    users = dependents(definitions, current.name)
    if users:
        verb = "archiving"
        raise SegopsError(
            f"segment '{current.name}' is used by in_segment(\"{current.name}\") in "
            f"{', '.join(repr(u) for u in users)}: {verb} would break "
            f"{'them' if len(users) > 1 else 'it'}; change {'those' if len(users) > 1 else 'that'}"
            " segment first"
        )


def validate_definition(
    ws: Workspace | None,
    *,
    current: SegmentDef,
    new: SegmentDef,
    definitions: dict[str, SegmentDef],
) -> None:
    """Validate ``new`` in the catalog as ``apply`` would; raise one clear SegopsError."""
    origin = f"proposal for '{current.name}'"
    try:
        check_slack_ids(new, origin=origin)
    except WorkspaceError as exc:
        raise SegopsError(str(exc)) from None
    if new.name != current.name and new.name in definitions:
        raise SegopsError(f"{origin}: a segment named '{new.name}' already exists")
    check_references(definitions, current, new)
    if new.name != current.name:
        definitions = rename_references(definitions, current.name, new.name)
    others = {n: d for n, d in definitions.items() if n not in (current.name, new.name)}
    candidate = list(others.values()) + ([new] if new.status == "active" else [])
    if ws is None:
        # No workspace: syntax, segment references and cycles only (columns unknown).
        try:
            deps = {}
            for d in candidate:
                rule = rules.parse(d.rule)
                missing = sorted(rules.dependencies(rule) - {c.name for c in candidate})
                if missing:
                    raise SegopsError(f"unknown segment '{missing[0]}'")
                deps[d.name] = rules.dependencies(rule)
            rules.order_segments(deps)
        except SegopsError as exc:
            raise SegopsError(f"{origin}: segment '{new.name}': rule: {exc}") from None
        return
    check = ws.model_copy(update={"segments": candidate})
    try:
        check_workspace(check, origin=origin)
    except WorkspaceError as exc:
        raise SegopsError(str(exc)) from None
