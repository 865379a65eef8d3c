"""The workspace file: sources, features, scores and segments kept as code in YAML.

A workspace is one YAML file. Paths inside it are relative to the file::

    sources:
      crm:                        # one row per account
        kind: entity
        path: data/crm.csv
        id: account_id
        id_case: lower            # ids are always trimmed; lower/upper folds case
        created: created_at       # rows created after as_of are left out
        timestamp: updated_at     # freshness is judged on this column
        columns: {plan: string, seats: number, region: string, created_at: date}
      product:                    # events: id, time, name, optional value
        kind: events
        path: data/events.csv
        id: email
        map_via: people           # e-mail -> account id through a mapping source
        timestamp: ts
        event: event
        value: value
        quality: {max_age_days: 2}
      people:
        kind: mapping
        path: data/people.csv
        key: email
        id: account_id
    features:
      logins_30d: {source: product, event: login, agg: count, window_days: 30}
      days_since_login: {source: product, event: login, agg: days_since}
    scores:
      engagement: {weights: {logins_30d: 1.0, days_since_login: -0.5}}
    labels:                       # how messages name and show a column (all optional)
      logins_30d: {label: Logins in 30 days, unit: per account, good_direction: up}
      days_since_login: {label: Days since last login, format: days}
    segments:
      - name: power-users
        title: Power users
        tier: strategic
        owner: U0123ABCD
        channel: "#growth"
        cadence: weekly
        rule: plan in ('pro', 'enterprise') and logins_30d >= 20
        kpis: [seats]
        persona: {summary: Heavy daily users on paid plans}

``load_workspace`` validates the whole file (shape, names, rule syntax and size, columns
known to the sources, segment references, reference cycles, where file sources lead and
that SQL queries only read) and raises one :class:`WorkspaceError` naming the file, the
segment or source and the problem.

Names are matched whole (``re.fullmatch``): segment names are slugs (``[a-z][a-z0-9_-]*``, at
most 63 characters); source, feature and score names are identifiers
(``[A-Za-z_][A-Za-z0-9_]*``, at most 63), as rules write them. A file source must stay inside
the workspace file's folder or the data roots, an allow-list set by the caller
(``data_roots=``) or the ``SEGOPS_DATA_ROOTS`` environment variable, never by the file
itself; see :mod:`segments.access`.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from segments.access import (
    DATA_ROOTS_ENV,
    AccessError,
    check_query,
    contained,
    contained_tree,
)
from segments.access import data_roots as allowed_roots
from segments.destinations import DestinationConfig, check_destinations
from segments.drift import DriftThresholds
from segments.errors import SegopsError
from segments.rules.checks import order_segments, validate
from segments.rules.parser import parse
from segments.rules.text import to_text
from segments.rules.tree import Rule, dependencies
from segments.schema import Schema

Kind = Literal["number", "string", "bool", "date"]
Tier = Literal["core", "strategic", "tactical"]
CADENCES = ("daily", "weekly", "monthly", "quarterly", "live")
DEFAULT_CADENCE = {"core": "weekly", "strategic": "quarterly", "tactical": "monthly"}
SLUG = re.compile(r"[a-z][a-z0-9_-]{0,62}")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
CRON_FIELD = re.compile(r"[\d*/,\-a-zA-Z?#LW]+")
SLACK_USER = re.compile(r"[UW][A-Z0-9]+")
SLACK_CHANNEL = re.compile(r"[CG][A-Z0-9]+|#[a-z0-9][a-z0-9_\-]{0,79}")


class WorkspaceError(SegopsError):
    """The workspace file is malformed; the message names the file and where."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class QualityThresholds(_Model):
    """Quality-gate thresholds; set per workspace, per source or per segment.

    Shares are 0-1 and jumps are in share points above the median of the history (which
    needs ``null_history_min`` past runs): ``max_id_share``/``max_id_jump`` for blank and
    unresolved ids, ``max_invalid_share``/``max_invalid_jump`` for values that do not
    parse; ``max_future_days`` is how far after as_of a timestamp may be and still count
    for freshness."""

    max_age_days: float = Field(default=3, ge=0)
    max_row_change: float = Field(default=0.25, ge=0)
    max_null_jump: float = Field(default=0.10, ge=0, le=1)
    null_history_min: int = Field(default=2, ge=1)
    max_duplicate_ids: int = Field(default=0, ge=0)
    max_id_share: float = Field(default=0.5, ge=0, le=1)
    max_id_jump: float = Field(default=0.10, ge=0, le=1)
    max_invalid_share: float = Field(default=0.02, ge=0, le=1)
    max_invalid_jump: float = Field(default=0.001, ge=0, le=1)
    max_future_days: float = Field(default=1, ge=0)


_CSV_DEFAULTS: dict[str, Any] = {
    "delimiter": ",",
    "na_values": [],
    "thousands": None,
    "decimal": ".",
    "date_format": None,
    "encoding": "utf-8",
}


class SourceConfig(_Model):
    """Where one source lives and how its ids are read.

    A CSV source may also say how its file is written: ``delimiter`` (one character),
    ``na_values`` (markers missing in every column; text columns otherwise only miss the
    empty string), ``thousands`` and ``decimal`` (digit grouping and decimal mark) and
    ``date_format`` (strftime, for the source or per date column; ISO 8601 otherwise).
    See :mod:`segments.sources.files`."""

    kind: Literal["entity", "events", "mapping"]
    format: Literal["csv", "parquet", "sql"] | None = None
    path: str | None = None
    url: str | None = None
    table: str | None = None
    query: str | None = None
    id: str
    key: str | None = None
    id_case: Literal["preserve", "lower", "upper"] = "preserve"
    map_via: str | None = None
    timestamp: str | None = None
    event: str | None = None
    value: str | None = None
    created: str | None = None
    columns: dict[str, Kind] = Field(default_factory=dict)
    quality: QualityThresholds | None = None
    delimiter: str = ","
    na_values: list[str] = Field(default_factory=list)
    thousands: str | None = None
    decimal: str = "."
    date_format: str | dict[str, str] | None = None
    encoding: str = "utf-8"
    """The text encoding of a CSV file (any Python codec name: latin-1, cp1252, utf-16)."""

    @field_validator("encoding")
    @classmethod
    def _codec(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"encoding {value!r} is not a known text encoding "
                "(for example utf-8, latin-1, cp1252 or utf-16)"
            ) from None
        return value

    @field_validator("delimiter", "thousands", "decimal")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 1 or value in '\r\n"'):
            raise ValueError(f"must be one character other than a quote or newline, not {value!r}")
        return value

    @field_validator("thousands", "decimal")
    @classmethod
    def _not_a_digit(cls, value: str | None) -> str | None:
        if value is not None and (value.isdigit() or value in "+-eE"):
            raise ValueError(f"{value!r} cannot separate digits")
        return value

    @field_validator("date_format")
    @classmethod
    def _date_formats(cls, value: str | dict[str, str] | None) -> str | dict[str, str] | None:
        for fmt in [value] if isinstance(value, str) else (value or {}).values():
            _check_date_format(fmt)
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The CSV reading options only when set, so a workspace without them dumps (and
        fingerprints) as before they existed."""
        data = handler(self)
        for option, default in _CSV_DEFAULTS.items():
            if option in data and data[option] == default:
                del data[option]
        return data

    def date_format_for(self, column: str) -> str | None:
        """The strftime format a date column is read with; None: ISO 8601 only."""
        if isinstance(self.date_format, dict):
            return self.date_format.get(column)
        return self.date_format

    def date_columns(self) -> list[str]:
        """The columns read as dates: declared ``date`` columns, ``timestamp`` and ``created``."""
        dated = [c for c, k in self.columns.items() if k == "date"]
        return list(dict.fromkeys(c for c in (*dated, self.timestamp, self.created) if c))

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        if self.format is None:
            if self.path:
                self.format = "parquet" if self.path.endswith(".parquet") else "csv"
            else:
                self.format = "sql"
        if self.format in ("csv", "parquet") and not self.path:
            raise ValueError(f"a {self.format} source needs 'path'")
        if self.format == "sql" and not (self.url and (self.table or self.query)):
            raise ValueError("a sql source needs 'url' and one of 'table' or 'query'")
        if self.kind == "events" and not self.timestamp:
            raise ValueError("an events source needs 'timestamp'")
        if self.kind == "mapping" and not self.key:
            raise ValueError("a mapping source needs 'key' (the column to map from)")
        if self.format != "csv":
            for option in _CSV_DEFAULTS:
                if option in self.model_fields_set:
                    raise ValueError(f"'{option}' applies to csv sources only")
        if self.thousands is not None and self.thousands == self.decimal:
            raise ValueError(f"'thousands' and 'decimal' are both {self.decimal!r}")
        if isinstance(self.date_format, dict):
            dated = self.date_columns()
            for column in self.date_format:
                if column not in dated:
                    raise ValueError(f"date_format: {column!r} is not a date column of this source")
        return self


def _check_date_format(fmt: str) -> None:
    """A strftime format that names at least a year, month and day and reads back what it
    writes; ValueError otherwise."""
    directives = set(re.findall(r"%(.)", fmt))
    if not {"Y", "m", "d"} <= directives and not {"Y", "b", "d"} <= directives:
        raise ValueError(f"date_format {fmt!r} needs a day, a month and a four-digit year")
    sample = datetime(2026, 11, 23, 17, 45, 31)
    try:
        parsed = datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError:
        parsed = None
    if parsed is None or parsed.date() != sample.date():
        raise ValueError(f"date_format {fmt!r} is not a valid strftime format")


Aggregation = Literal["count", "sum", "avg", "min", "max", "first", "last", "days_since"]


class FeatureConfig(_Model):
    """A per-entity aggregation of an events source over a window ending at as_of."""

    source: str
    agg: Aggregation
    event: str | list[str] | None = None
    window_days: int | None = Field(default=None, ge=1)
    fill: float | None = None

    @property
    def events(self) -> list[str] | None:
        if self.event is None:
            return None
        return [self.event] if isinstance(self.event, str) else list(self.event)


class ScoreConfig(_Model):
    """A 0-100 score: a weighted sum of normalised columns (negative weight = inverse)."""

    weights: dict[str, float] = Field(min_length=1)
    method: Literal["rank", "minmax"] = "rank"
    description: str | None = None


class Persona(_Model):
    """The human side of a segment, rendered into briefs."""

    summary: str = ""
    goals: list[str] = Field(default_factory=list)
    pains: list[str] = Field(default_factory=list)
    objections: list[str] = Field(default_factory=list)
    value_propositions: list[str] = Field(default_factory=list)
    talking_points: list[str] = Field(default_factory=list)
    discovery_questions: list[str] = Field(default_factory=list)


class Hypothesis(_Model):
    """What a change (or an experiment) should do: move ``kpi`` in ``direction`` by at least
    ``mde`` (relative: 0.05 is 5 %) within ``window_days`` of taking effect."""

    kpi: str
    direction: Literal["increase", "decrease"]
    mde: float = Field(gt=0, le=10)
    window_days: int = Field(default=28, ge=1, le=366)
    kind: Literal["mean", "proportion"] = "mean"
    statement: str = ""


class ExperimentConfig(Hypothesis):
    """A holdout experiment on a segment's members: ``holdout`` of them (0 < share <= 0.5,
    10 % by default), chosen by a salted hash of the entity id, never get the action.
    ``also`` lists further KPIs read with a ``correction`` for several KPIs."""

    holdout: float = 0.1
    salt: str | None = None
    also: list[str] = Field(default_factory=list)
    correction: Literal["holm", "fdr_bh"] = "holm"

    @field_validator("holdout")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0 < value <= 0.5:
            raise ValueError(f"holdout share {value} must be above 0 and at most 0.5")
        return value


class LiveNotifications(_Model):
    """Live joins and leaves posted to the segment's channel (its owner's DMs without
    one): at most one message every ``every_minutes``, grouping what happened since the
    last, naming up to ``shown`` entities of each kind. ``true`` in YAML takes the
    defaults. Only a segment with ``cadence: live`` may ask for them."""

    every_minutes: int = Field(default=15, ge=1, le=1440)
    shown: int = Field(default=10, ge=0, le=50)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value is True:
            return {}
        if value is False or value is None:
            raise ValueError("live_notifications: leave the key out to turn them off")
        return value


_UNSET_WHEN_NONE = ("hypothesis", "experiment", "live_notifications")


class DriftSettings(_Model):
    """A segment's drift settings: any threshold of :class:`segments.drift.DriftThresholds`
    (``size_warning_change: 0.3``, ``psi_warning: 0.25``, ...; ``min_size`` is the segment's
    own key) and the baseline drift also compares with: a day (the published refresh on or
    before it) or ``rolling`` (the oldest of the last ``baseline_window`` refreshes)."""

    model_config = ConfigDict(extra="allow")

    baseline: date | Literal["rolling"] | None = None
    baseline_window: int = Field(default=6, ge=2, le=100)

    @model_validator(mode="after")
    def _known_thresholds(self) -> DriftSettings:
        for name, value in self.overrides().items():
            if name == "min_size":
                raise ValueError("min_size is set on the segment itself, not under drift")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"drift threshold {name} must be a number, not {value!r}")
        try:
            self.thresholds()
        except SegopsError as exc:
            raise ValueError(str(exc)) from None
        return self

    def overrides(self) -> dict[str, Any]:
        """The thresholds this segment sets."""
        return dict(self.model_extra or {})

    def thresholds(self, min_size: int = 0) -> DriftThresholds:
        """The drift thresholds: the defaults with this segment's overrides."""
        return DriftThresholds(min_size=min_size).with_overrides(self.overrides())


class SegmentDef(_Model):
    """One segment definition as written in the workspace."""

    name: str
    title: str
    tier: Tier = "tactical"
    status: Literal["active", "archived"] = "active"
    owner: str
    approvers: list[str] = Field(default_factory=list)
    channel: str | None = None
    cadence: str | None = None
    rule: str
    purpose: str = ""
    rationale: str = ""
    behavior_signals: list[str] = Field(default_factory=list)
    data_sources: list[str] = Field(default_factory=list)
    known_limitations: list[str] = Field(default_factory=list)
    kpis: list[str] = Field(default_factory=list)
    min_size: int = Field(default=0, ge=0)
    block_on_min_size: bool = False
    quality: QualityThresholds | None = None
    persona: Persona = Field(default_factory=Persona)
    hypothesis: Hypothesis | None = None
    experiment: ExperimentConfig | None = None
    drift: DriftSettings | None = None
    live_notifications: LiveNotifications | None = None
    based_on: int | None = Field(default=None, ge=1, exclude=True)
    """The catalog version this definition was exported from (written by ``segops
    export``): not part of the definition, it tells ``apply`` whether the file's author
    has seen the catalog's latest version."""
    renamed_from: str | None = Field(default=None, exclude=True)
    """The catalog name this segment had before: ``apply`` renames that segment (keeping
    its history, memberships, alerts and feedback) instead of archiving it and creating a
    new one. Not part of the definition; it may stay in the file after the rename."""
    merged_from: list[str] = Field(default_factory=list, exclude=True)
    """Segments this new segment replaces (at least two, which the file removes or
    archives): it is created as a ``merge`` and their archive says what it went into."""
    split_from: str | None = Field(default=None, exclude=True)
    """The segment this new segment is a part of: it is created as a ``split``; the
    parent may stay or be removed (archived, naming its parts)."""

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``hypothesis`` and ``experiment`` only when set, so a segment without them dumps
        (and fingerprints) as before they existed."""
        data = handler(self)
        for key in _UNSET_WHEN_NONE:
            if key in data and data[key] is None:
                del data[key]
        return data

    @property
    def tracked_kpis(self) -> list[str]:
        """The KPIs profiled on every refresh: ``kpis``, then those of the hypothesis and
        the experiment."""
        extra = []
        for spec in (self.hypothesis, self.experiment):
            if spec is not None:
                extra.append(spec.kpi)
        if self.experiment is not None:
            extra.extend(self.experiment.also)
        return list(dict.fromkeys([*self.kpis, *extra]))

    @field_validator("name", "renamed_from")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not SLUG.fullmatch(value):
            raise ValueError(
                f"name {value!r} must be a slug: lower-case letters, digits, '-' and '_', "
                "starting with a letter"
            )
        return value

    @field_validator("merged_from")
    @classmethod
    def _merged(cls, value: list[str]) -> list[str]:
        for name in value:
            cls._slug(name)
        if value and len(set(value)) < 2:
            raise ValueError("merged_from needs at least two different segments")
        return value

    @field_validator("split_from")
    @classmethod
    def _split(cls, value: str | None) -> str | None:
        return cls._slug(value)

    @field_validator("cadence")
    @classmethod
    def _cadence(cls, value: str | None) -> str | None:
        if value is None or value in CADENCES:
            return value
        fields = value.split()
        if len(fields) != 5 or not all(CRON_FIELD.fullmatch(f) for f in fields):
            raise ValueError(
                f"cadence {value!r} must be daily, weekly, monthly, quarterly, live "
                "or a 5-field cron string"
            )
        return value

    @model_validator(mode="after")
    def _notifications_need_live(self) -> SegmentDef:
        if self.live_notifications is not None and self.cadence != "live":
            raise ValueError(
                f"live_notifications needs cadence: live (segment {self.name!r} has "
                f"cadence {self.effective_cadence!r})"
            )
        return self

    @property
    def effective_cadence(self) -> str:
        return self.cadence or DEFAULT_CADENCE[self.tier]

    def tree(self) -> Rule:
        """The parsed rule (RuleError when invalid); the parser reuses the tree of a text
        it has seen, so validation, fingerprint and canonical form parse it once."""
        return parse(self.rule)

    def canonical(self) -> dict[str, Any]:
        """The definition as a plain dict, with the rule in canonical text form."""
        data = self.model_dump(mode="json")
        data["rule"] = to_text(self.tree())
        if data.get("drift") is None:
            data.pop("drift", None)  # definitions written before drift settings keep their hash
        return data

    def drift_thresholds(self) -> DriftThresholds:
        """The thresholds drift is judged with for this segment."""
        if self.drift is None:
            return DriftThresholds(min_size=self.min_size)
        return self.drift.thresholds(self.min_size)

    def fingerprint(self) -> str:
        """A hash of the canonical definition: equal hashes mean nothing changed."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


class Label(_Model):
    """How messages name and show one column, feature or score (all optional).

    ``label`` is its name in plain words ("Failed payments in 60 days"); ``format`` how
    a value reads: ``number`` (default), ``count``, ``currency`` (``unit`` is the symbol,
    ``$`` when unset), ``percent`` (values in percent, 0-100) or ``days``; ``unit`` a word
    after the value ("per account"); ``good_direction`` whether a rise is good news
    (``up``), bad news (``down``) or neither (unset)."""

    label: str | None = Field(default=None, min_length=1, max_length=80)
    format: Literal["number", "count", "currency", "percent", "days"] = "number"
    unit: str | None = Field(default=None, min_length=1, max_length=24)
    good_direction: Literal["up", "down"] | None = None


class Workspace(_Model):
    """The whole workspace file."""

    version: int = 1
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    features: dict[str, FeatureConfig] = Field(default_factory=dict)
    scores: dict[str, ScoreConfig] = Field(default_factory=dict)
    quality: QualityThresholds = Field(default_factory=QualityThresholds)
    segments: list[SegmentDef] = Field(default_factory=list)
    labels: dict[str, Label] = Field(default_factory=dict)
    destinations: dict[str, DestinationConfig] = Field(default_factory=dict)
    engine: Literal["pandas", "duckdb", "sql"] | None = None
    """Where a refresh runs (see :mod:`segments.engine`); None chooses from the sources."""
    base_dir: Path = Field(default=Path("."), exclude=True)
    path: Path | None = Field(default=None, exclude=True)
    _data_roots: tuple[Path, ...] | None = PrivateAttr(default=None)

    def labels_for(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The labels of ``names`` that have one, as plain dicts for a message context."""
        return {n: self.labels[n].model_dump(exclude_none=True) for n in names if n in self.labels}

    def segment(self, name: str) -> SegmentDef:
        for seg in self.segments:
            if seg.name == name:
                return seg
        raise KeyError(name)

    def thresholds_for(self, source: str, segment: SegmentDef | None = None) -> QualityThresholds:
        """Workspace defaults, overridden by the source's, then by the segment's settings."""
        merged = self.quality.model_dump()
        src = self.sources[source].quality if source in self.sources else None
        for override in (src, segment.quality if segment else None):
            if override is not None:
                merged.update(override.model_dump(exclude_unset=True))
        return QualityThresholds(**merged)

    def resolve_path(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.base_dir / path

    @property
    def data_roots(self) -> tuple[Path, ...]:
        """Folders besides the workspace's own that file sources may read: those given
        when the file was loaded (none when it was built otherwise)."""
        return self._data_roots if self._data_roots is not None else allowed_roots()

    def data_path(self, relative: str, *, entries: bool = True) -> Path:
        """A file source's path, resolved; AccessError when it leads outside the workspace
        folder and the data roots (with ``entries``, for a directory any entry below it)."""
        check = contained_tree if entries else contained
        return check(
            self.resolve_path(relative),
            shown=relative,
            base_dir=self.base_dir,
            roots=self.data_roots,
        )


def declared_schema(ws: Workspace) -> Schema:
    """The columns rules may use, known without reading any data.

    Entity-source columns are plain names when one source has them and
    ``source.column`` when several do; features and scores are numbers.
    """
    owners: dict[str, list[str]] = {}
    for name, src in ws.sources.items():
        if src.kind == "entity":
            for column in src.columns:
                owners.setdefault(column, []).append(name)
    columns: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for column, sources in owners.items():
        for source in sources:
            kind = ws.sources[source].columns[column]
            frame_name = column if len(sources) == 1 else f"{source}.{column}"
            columns[frame_name] = kind
            aliases[f"{source}.{column}"] = frame_name
    for name in (*ws.features, *ws.scores):
        columns[name] = "number"
    return Schema(columns=columns, aliases=aliases)


def _where(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """Turn a pydantic error location into 'segment trial, field rule' style text."""
    if len(loc) >= 2 and loc[0] == "segments" and isinstance(loc[1], int):
        segs = data.get("segments") or []
        name = None
        if loc[1] < len(segs) and isinstance(segs[loc[1]], dict):
            name = segs[loc[1]].get("name")
        head = f"segment {name!r}" if name else f"segment #{loc[1] + 1}"
        rest = ".".join(str(p) for p in loc[2:])
        return f"{head}, field {rest}" if rest else head
    if len(loc) >= 2 and loc[0] in ("sources", "features", "scores", "destinations"):
        rest = ".".join(str(p) for p in loc[2:])
        head = f"{loc[0][:-1]} {loc[1]!r}"
        return f"{head}, field {rest}" if rest else head
    return "field " + ".".join(str(p) for p in loc)


def parse_workspace(
    data: Any,
    *,
    origin: str,
    base_dir: Path,
    data_roots: Iterable[str | Path] | None = None,
) -> Workspace:
    """Validate already-loaded YAML data; raise WorkspaceError on the first problem.

    ``data_roots`` (absolute folders) is the allow-list of file-source folders besides
    ``base_dir``; None allows only ``base_dir`` (the entry points pass
    ``Settings.data_root_paths``, from ``SEGOPS_DATA_ROOTS``).
    """
    if not isinstance(data, dict):
        raise WorkspaceError(f"{origin}: expected a mapping with 'sources' and 'segments'")
    if "data_roots" in data:
        raise WorkspaceError(
            f"{origin}: data_roots cannot be set in the workspace file; "
            f"whoever runs segops sets {DATA_ROOTS_ENV}"
        )
    try:
        roots = allowed_roots(data_roots)
    except AccessError as exc:
        raise WorkspaceError(f"{origin}: {exc}") from None
    try:
        ws = Workspace.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        raise WorkspaceError(f"{origin}: {_where(err['loc'], data)}: {msg}") from None
    ws._data_roots = roots
    check_workspace(ws, origin=origin)
    for seg in ws.segments:
        check_slack_ids(seg, origin=origin)
    return ws


def check_slack_ids(seg: SegmentDef, *, origin: str) -> None:
    """Owner and approvers are Slack user ids, the channel a channel id or ``#name``."""
    for role, user in [("owner", seg.owner), *(("approvers", a) for a in seg.approvers)]:
        if not SLACK_USER.fullmatch(user):
            raise WorkspaceError(
                f"{origin}: segment {seg.name!r}: {role}: {user!r} is not a Slack user id "
                "(like U0123ABCD, the member id in the person's Slack profile)"
            )
    if seg.channel is not None and not SLACK_CHANNEL.fullmatch(seg.channel):
        raise WorkspaceError(
            f"{origin}: segment {seg.name!r}: channel: {seg.channel!r} must be a channel id "
            "(like C0123ABCD) or '#name' in lower case"
        )


def load_workspace(
    path: str | Path, *, data_roots: Iterable[str | Path] | None = None
) -> Workspace:
    """Read and fully validate a workspace file (``data_roots``: see parse_workspace)."""
    path = Path(path)
    if not path.is_file():
        raise WorkspaceError(f"{path}: workspace file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise WorkspaceError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}): save the file as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise WorkspaceError(f"{path}: {problem}{where}") from None
    ws = parse_workspace(
        data, origin=str(path), base_dir=path.resolve().parent, data_roots=data_roots
    )
    ws.path = path
    return ws


def archived_reference(target: str, users: list[str]) -> str:
    """The one-line refusal of active segments ``users`` referring to archived ``target``."""
    listed = ", ".join(repr(name) for name in users)
    return (
        f"segment {target!r} is archived but active segments refer to it: {listed}; "
        f"archive them too or drop in_segment({target!r}) from their rules"
    )


def check_workspace(ws: Workspace, *, origin: str) -> None:
    """Cross-field checks: names, where sources lead, references between sources, features,
    scores and segments, and the rules."""
    for group, names in (("source", ws.sources), ("feature", ws.features), ("score", ws.scores)):
        for name in names:
            if not NAME.fullmatch(name):
                raise WorkspaceError(
                    f"{origin}: {group} name {name!r} must be letters, digits and '_', "
                    "starting with a letter or '_' (at most 63 characters)"
                )
    for name, src in ws.sources.items():
        _check_access(ws, name, src, origin)
    for name, src in ws.sources.items():
        if src.map_via is not None:
            target = ws.sources.get(src.map_via)
            if target is None or target.kind != "mapping":
                raise WorkspaceError(
                    f"{origin}: source {name!r}: map_via {src.map_via!r} is not a mapping source"
                )
    taken: dict[str, str] = {}
    for name, src in ws.sources.items():
        if src.kind == "mapping" and src.map_via is not None:
            raise WorkspaceError(f"{origin}: source {name!r}: a mapping source cannot use map_via")
        if src.kind == "entity":
            for column in src.columns:
                taken.setdefault(column, f"a column of source {name!r}")
    for group, names in (("feature", ws.features), ("score", ws.scores)):
        for name in names:
            if name in taken:
                raise WorkspaceError(f"{origin}: {group} {name!r} has the name of {taken[name]}")
            taken[name] = f"a {group}"
    for name, feat in ws.features.items():
        src = ws.sources.get(feat.source)
        if src is None or src.kind != "events":
            raise WorkspaceError(
                f"{origin}: feature {name!r}: source {feat.source!r} is not an events source"
            )
        if feat.agg in ("sum", "avg", "min", "max", "first", "last") and not src.value:
            raise WorkspaceError(
                f"{origin}: feature {name!r}: '{feat.agg}' needs a 'value' column "
                f"on source {feat.source!r}"
            )
    schema = declared_schema(ws)
    for name, score in ws.scores.items():
        for column in score.weights:
            if column == name:
                raise WorkspaceError(f"{origin}: score {name!r} cannot weigh itself")
            try:
                schema.resolve(column)
            except SegopsError as exc:
                raise WorkspaceError(f"{origin}: score {name!r}: {exc}") from None
    _check_score_cycles(ws, origin)
    for name in ws.labels:
        try:
            schema.resolve(name)
        except SegopsError as exc:
            raise WorkspaceError(f"{origin}: labels: {exc}") from None
    names = [seg.name for seg in ws.segments]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise WorkspaceError(f"{origin}: segment {dupes[0]!r} is defined more than once")
    spelled: dict[str, str] = {}
    for name in names:
        other = spelled.setdefault(name.replace("_", "-"), name)
        if other != name:
            raise WorkspaceError(
                f"{origin}: segments {other!r} and {name!r} differ only by '-' and '_': "
                "rename one of them"
            )
    deps: dict[str, set[str]] = {}
    for seg in ws.segments:
        try:
            rule = seg.tree()
        except SegopsError as exc:
            raise WorkspaceError(f"{origin}: segment {seg.name!r}: rule: {exc}") from None
        problems = validate(rule, schema, segments=names)
        if problems:
            raise WorkspaceError(f"{origin}: segment {seg.name!r}: rule: {problems[0]}")
        for kpi in seg.kpis:
            try:
                schema.resolve(kpi)
            except SegopsError as exc:
                raise WorkspaceError(f"{origin}: segment {seg.name!r}: kpis: {exc}") from None
        for field, spec in (("hypothesis", seg.hypothesis), ("experiment", seg.experiment)):
            kpis = [spec.kpi, *getattr(spec, "also", [])] if spec is not None else []
            for kpi in kpis:
                try:
                    schema.resolve(kpi)
                except SegopsError as exc:
                    raise WorkspaceError(
                        f"{origin}: segment {seg.name!r}: {field}: KPI {kpi!r} is not in the "
                        f"sources: {exc}"
                    ) from None
        for source in seg.data_sources:
            if source not in ws.sources:
                raise WorkspaceError(
                    f"{origin}: segment {seg.name!r}: data_sources: unknown source {source!r}"
                )
        deps[seg.name] = dependencies(rule)
    archived = {seg.name for seg in ws.segments if seg.status == "archived"}
    for target in sorted(archived):
        users = sorted(
            seg.name for seg in ws.segments if seg.status == "active" and target in deps[seg.name]
        )
        if users:
            raise WorkspaceError(f"{origin}: {archived_reference(target, users)}")
    try:
        order_segments(deps)
    except SegopsError as exc:
        raise WorkspaceError(f"{origin}: {exc}") from None
    try:
        check_destinations(ws.destinations, names)
    except ValueError as exc:
        raise WorkspaceError(f"{origin}: {exc}") from None


def _check_access(ws: Workspace, name: str, src: SourceConfig, origin: str) -> None:
    """A file source stays inside the allowed folders; a SQL query is one read-only SELECT."""
    try:
        if src.format in ("csv", "parquet"):
            ws.data_path(src.path or "", entries=False)
        elif src.query is not None:
            check_query(src.query, src.url)
    except AccessError as exc:
        raise WorkspaceError(f"{origin}: source {name!r}: {exc}") from None


def _check_score_cycles(ws: Workspace, origin: str) -> None:
    """Scores may weigh other scores, but not in a circle."""
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            loop = " -> ".join([*path[path.index(name) :], name])
            raise WorkspaceError(f"{origin}: scores weigh each other in a cycle: {loop}")
        state[name] = 1
        for column in ws.scores[name].weights:
            if column in ws.scores:
                visit(column, [*path, name])
        state[name] = 2

    for name in ws.scores:
        visit(name, [])


def _dumped(seg: SegmentDef) -> dict[str, Any]:
    data = seg.canonical()
    if seg.based_on is not None:
        data["based_on"] = seg.based_on
    return data


def dump_workspace(ws: Workspace) -> str:
    """The workspace as YAML that loads back to an equal workspace."""
    data = ws.model_dump(mode="json", exclude_defaults=False, exclude={"base_dir", "path"})
    data["segments"] = [_dumped(seg) for seg in ws.segments]
    if not ws.destinations:
        data.pop("destinations", None)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
