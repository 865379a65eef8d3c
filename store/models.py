"""SQLModel tables: the segment catalog, snapshots and results, alerts, feedback,
proposals, the Slack outbox, event de-duplication and the scheduler lease.

Conventions:

- Timestamps are timezone-aware UTC datetimes on every backend (``UTCDateTime``);
  naive datetimes written by callers are taken to be UTC.
- Closed vocabularies (tier, status, kind, ...) are plain strings guarded by CHECK
  constraints; the ``Literal`` aliases below list the allowed values.
- JSON columns hold plain JSON values; assign a new value to change one (in-place
  mutation of a loaded list or dict is not tracked).
- Every constraint and index has a name (``NAMING_CONVENTION``) so Alembic batch
  migrations on SQLite can address it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata = SQLModel.metadata

Tier = Literal["core", "strategic", "tactical"]
SegmentStatus = Literal["active", "archived"]
ChangeKind = Literal["create", "edit", "rename", "merge", "split", "archive"]
SnapshotStatus = Literal["published", "blocked", "partial", "unchanged"]
ResultStatus = Literal["published", "blocked", "unchanged"]
AlertStatus = Literal["open", "acknowledged", "muted"]
Sentiment = Literal["positive", "neutral", "negative"]
Importance = Literal["low", "medium", "high"]
Origin = Literal["cli", "slack"]
ProposalKind = Literal["edit", "rename", "archive", "persona"]
ProposalStatus = Literal["pending", "approved", "rejected", "stale"]
DecisionVia = Literal["button", "reaction", "cli"]
OutboxStatus = Literal["pending", "sending", "sent", "dead"]
DestinationStatus = Literal["active", "disabled"]
SyncRunStatus = Literal["open", "held", "done", "failed", "cancelled"]
SyncRunKind = Literal["diff", "resync", "retire"]
SyncBatchStatus = Literal["pending", "sending", "sent", "dead", "cancelled"]


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always hands back aware UTC datetimes.

    SQLite has no time zone type, so values are stored there as naive UTC; PostgreSQL
    stores ``timestamptz``. Naive input is taken to be UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _one_of(column: str, allowed: Any) -> sa.CheckConstraint:
    """A named CHECK constraint limiting ``column`` to the values of a ``Literal`` alias."""
    values = ", ".join(f"'{value}'" for value in get_args(allowed))
    return sa.CheckConstraint(f"{column} IN ({values})", name=column)


def _created_at() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)


def _json(factory: type[list[Any]] | type[dict[str, Any]]) -> Any:
    return Field(default_factory=factory, sa_type=sa.JSON(), nullable=False)


class Segment(SQLModel, table=True):
    """A named segment in the catalog; its definition lives in ``SegmentVersion`` rows."""

    __tablename__ = "segment"
    __table_args__ = (_one_of("tier", Tier), _one_of("status", SegmentStatus))

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=sa.String(64), unique=True)
    title: str = Field(sa_type=sa.String())
    tier: Tier = Field(default="tactical", sa_type=sa.String(16))
    status: SegmentStatus = Field(default="active", sa_type=sa.String(16))
    owner: str = Field(sa_type=sa.String())
    approvers: list[str] = _json(list)
    channel: str | None = Field(default=None, sa_type=sa.String())
    cadence: str = Field(sa_type=sa.String())
    current_version_id: int | None = None
    current_result_id: int | None = None
    created_at: datetime = _created_at()
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=UTCDateTime(),
        nullable=False,
        sa_column_kwargs={"onupdate": utcnow},
    )


class SegmentVersion(SQLModel, table=True):
    """One immutable revision of a segment's full definition."""

    __tablename__ = "segment_version"
    __table_args__ = (
        sa.UniqueConstraint("segment_id", "version"),
        _one_of("change_kind", ChangeKind),
    )

    id: int | None = Field(default=None, primary_key=True)
    segment_id: int = Field(foreign_key="segment.id")
    version: int
    definition: dict[str, Any] = _json(dict)
    rule_text: str = Field(sa_type=sa.Text())
    definition_hash: str = Field(sa_type=sa.String(64))
    change_kind: ChangeKind = Field(sa_type=sa.String(16))
    author: str = Field(sa_type=sa.String())
    approver: str | None = Field(default=None, sa_type=sa.String())
    reason: str | None = Field(default=None, sa_type=sa.Text())
    created_at: datetime = _created_at()


OriginKind = Literal["merge", "split"]


class SegmentOrigin(SQLModel, table=True):
    """A segment that fed a merged or split segment when it was created: the source and
    the version of it that was in force."""

    __tablename__ = "segment_origin"
    __table_args__ = (
        sa.UniqueConstraint("segment_id", "source_segment_id"),
        _one_of("kind", OriginKind),
    )

    id: int | None = Field(default=None, primary_key=True)
    segment_id: int = Field(foreign_key="segment.id", index=True)
    source_segment_id: int = Field(foreign_key="segment.id")
    source_version_id: int = Field(foreign_key="segment_version.id")
    kind: OriginKind = Field(sa_type=sa.String(16))
    created_at: datetime = _created_at()


class Snapshot(SQLModel, table=True):
    """One refresh run for an ``as_of`` date, with the quality profile of its data."""

    __tablename__ = "snapshot"
    __table_args__ = (_one_of("status", SnapshotStatus),)

    id: int | None = Field(default=None, primary_key=True)
    as_of: date = Field(sa_type=sa.Date())
    status: SnapshotStatus = Field(sa_type=sa.String(16))
    data_fingerprint: str = Field(sa_type=sa.String(64))
    profile: dict[str, Any] = _json(dict)
    created_at: datetime = _created_at()


class SegmentResult(SQLModel, table=True):
    """A segment's membership (compressed bitmap of dense entity ids) in one snapshot."""

    __tablename__ = "segment_result"
    __table_args__ = (
        sa.Index("ix_segment_result_segment_id_id", "segment_id", "id"),
        _one_of("status", ResultStatus),
    )

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: int = Field(foreign_key="snapshot.id")
    segment_id: int = Field(foreign_key="segment.id")
    version_id: int = Field(foreign_key="segment_version.id")
    status: ResultStatus = Field(sa_type=sa.String(16))
    size: int
    previous_size: int | None = None
    joined: int = 0
    left: int = 0
    bitmap: bytes | None = Field(default=None, sa_type=sa.LargeBinary())
    stats: dict[str, Any] = _json(dict)
    leave_reasons: dict[str, Any] = _json(dict)
    created_at: datetime = _created_at()


class Entity(SQLModel, table=True):
    """The dense-id dictionary: ``id`` is assigned by the application, never generated."""

    __tablename__ = "entity"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    key: str = Field(sa_type=sa.String(), unique=True)


class Alert(SQLModel, table=True):
    """A drift or data-quality alert, de-duplicated by ``fingerprint``."""

    __tablename__ = "alert"
    __table_args__ = (_one_of("status", AlertStatus),)

    id: int | None = Field(default=None, primary_key=True)
    segment_id: int | None = Field(default=None, foreign_key="segment.id")
    result_id: int | None = Field(default=None, foreign_key="segment_result.id")
    kind: str = Field(sa_type=sa.String())
    severity: str = Field(sa_type=sa.String())
    message: str = Field(sa_type=sa.Text())
    details: dict[str, Any] = _json(dict)
    status: AlertStatus = Field(default="open", sa_type=sa.String(16))
    fingerprint: str = Field(sa_type=sa.String(64), index=True)
    created_at: datetime = _created_at()
    acknowledged_by: str | None = Field(default=None, sa_type=sa.String())
    muted_until: datetime | None = Field(default=None, sa_type=UTCDateTime())


class Feedback(SQLModel, table=True):
    """A field observation logged against a segment (text already redacted)."""

    __tablename__ = "feedback"
    __table_args__ = (
        _one_of("sentiment", Sentiment),
        _one_of("importance", Importance),
        _one_of("origin", Origin),
    )

    id: int | None = Field(default=None, primary_key=True)
    segment_id: int = Field(foreign_key="segment.id")
    author: str = Field(sa_type=sa.String())
    text: str = Field(sa_type=sa.Text())
    sentiment: Sentiment | None = Field(default=None, sa_type=sa.String(16))
    importance: Importance | None = Field(default=None, sa_type=sa.String(16))
    reference: str | None = Field(default=None, sa_type=sa.String())
    permalink: str | None = Field(default=None, sa_type=sa.String())
    origin: Origin = Field(sa_type=sa.String(16))
    created_at: datetime = _created_at()
    digested_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class Proposal(SQLModel, table=True):
    """A proposed change to a segment, decided once by an owner or approver."""

    __tablename__ = "proposal"
    __table_args__ = (
        _one_of("kind", ProposalKind),
        _one_of("status", ProposalStatus),
        _one_of("decision_via", DecisionVia),
    )

    id: int | None = Field(default=None, primary_key=True)
    segment_id: int = Field(foreign_key="segment.id")
    base_version_id: int = Field(foreign_key="segment_version.id")
    proposer: str = Field(sa_type=sa.String())
    kind: ProposalKind = Field(sa_type=sa.String(16))
    changes: dict[str, Any] = _json(dict)
    reason: str = Field(sa_type=sa.Text())
    impact: dict[str, Any] = _json(dict)
    status: ProposalStatus = Field(default="pending", sa_type=sa.String(16))
    decided_by: str | None = Field(default=None, sa_type=sa.String())
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    decision_via: DecisionVia | None = Field(default=None, sa_type=sa.String(16))
    channel: str | None = Field(default=None, sa_type=sa.String())
    message_ts: str | None = Field(default=None, sa_type=sa.String())
    applied_version_id: int | None = None
    created_at: datetime = _created_at()


class OutboxMessage(SQLModel, table=True):
    """A Slack message waiting for (or done with) delivery; ``idempotency_key`` is unique."""

    __tablename__ = "outbox_message"
    __table_args__ = (_one_of("status", OutboxStatus),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(sa_type=sa.String(), unique=True)
    kind: str = Field(sa_type=sa.String())
    channel: str = Field(sa_type=sa.String())
    thread_key: str | None = Field(default=None, sa_type=sa.String())
    text: str = Field(sa_type=sa.Text())
    blocks: list[dict[str, Any]] = _json(list)
    files: list[dict[str, Any]] = _json(list)
    fallback_user: str | None = Field(default=None, sa_type=sa.String())
    status: OutboxStatus = Field(default="pending", sa_type=sa.String(16))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    last_error: str | None = Field(default=None, sa_type=sa.Text())
    ts: str | None = Field(default=None, sa_type=sa.String())
    created_at: datetime = _created_at()
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    edits: str | None = Field(default=None, sa_type=sa.String())
    """Set on a row that replaces a posted message (``chat.update``) instead of posting:
    ``ts:<ts>`` of a message in ``channel``, or ``key:<idempotency key>`` of another
    outbox row, edited once that one is sent (in the channel it was posted to)."""


class SlackEvent(SQLModel, table=True):
    """A delivered Events API ``event_id``: inserting it twice fails, so work runs once."""

    __tablename__ = "slack_event"

    event_id: str = Field(sa_type=sa.String(), primary_key=True)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class Lease(SQLModel, table=True):
    """A named lease (scheduler leadership) held by ``holder`` until ``expires_at``."""

    __tablename__ = "lease"

    name: str = Field(sa_type=sa.String(), primary_key=True)
    holder: str = Field(sa_type=sa.String())
    expires_at: datetime = Field(sa_type=UTCDateTime())


class SyncDestination(SQLModel, table=True):
    """A destination declared in the workspace, as far as delivery is concerned.

    ``status`` is ``disabled`` once the endpoint said it is gone (HTTP 410, an unknown
    list): nothing is sent until ``segops sync retry`` enables it again.
    """

    __tablename__ = "sync_destination"
    __table_args__ = (_one_of("status", DestinationStatus),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=sa.String(64), unique=True)
    kind: str = Field(sa_type=sa.String(16))
    status: DestinationStatus = Field(default="active", sa_type=sa.String(16))
    disabled_reason: str | None = Field(default=None, sa_type=sa.Text())
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = _created_at()


class SyncState(SQLModel, table=True):
    """What one destination acknowledged of one segment: a bitmap of dense ids.

    ``missing`` holds the ids the destination reported it does not know (HubSpot's
    ``recordIdsMissing``). They are not acknowledged: they are sent again once
    ``missing_retry_at`` has passed (15 minutes after the first report, doubling with
    each report in a row up to a day, ``missing_attempts``) or as soon as the segment has
    a newer result than ``missing_result_id``, the one they were reported for.
    """

    __tablename__ = "sync_state"
    __table_args__ = (sa.UniqueConstraint("destination_id", "segment_id"),)

    id: int | None = Field(default=None, primary_key=True)
    destination_id: int = Field(foreign_key="sync_destination.id")
    segment_id: int = Field(foreign_key="segment.id")
    acked: bytes | None = Field(default=None, sa_type=sa.LargeBinary())
    missing: bytes | None = Field(default=None, sa_type=sa.LargeBinary())
    missing_attempts: int = 0
    missing_retry_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    missing_result_id: int | None = None
    acked_count: int = 0
    updated_at: datetime = _created_at()


class SyncRun(SQLModel, table=True):
    """One sync of one segment to one destination: the diff planned into batches.

    ``kind``: ``diff`` (against what the destination acknowledged), ``resync`` (the
    destination is reset first, then sent everything), ``retire`` (the segment was
    archived or left the destination's scope: every acknowledged member is removed).
    """

    __tablename__ = "sync_run"
    __table_args__ = (
        sa.Index("ix_sync_run_destination_id_segment_id", "destination_id", "segment_id"),
        _one_of("status", SyncRunStatus),
        _one_of("kind", SyncRunKind),
    )

    id: int | None = Field(default=None, primary_key=True)
    destination_id: int = Field(foreign_key="sync_destination.id")
    segment_id: int = Field(foreign_key="segment.id")
    result_id: int | None = Field(default=None, foreign_key="segment_result.id")
    as_of: date | None = Field(default=None, sa_type=sa.Date())
    kind: SyncRunKind = Field(default="diff", sa_type=sa.String(16))
    status: SyncRunStatus = Field(default="open", sa_type=sa.String(16))
    added: int = 0
    removed: int = 0
    missing: int = 0
    dead: int = 0
    error: str | None = Field(default=None, sa_type=sa.Text())
    notified: bool = False
    reset_done: bool = False
    created_at: datetime = _created_at()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class SyncBatch(SQLModel, table=True):
    """One request's worth of a run; ``idempotency_key`` goes out with it on every attempt."""

    __tablename__ = "sync_batch"
    __table_args__ = (
        sa.Index("ix_sync_batch_status_next_attempt_at", "status", "next_attempt_at"),
        _one_of("status", SyncBatchStatus),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="sync_run.id", index=True)
    seq: int
    idempotency_key: str = Field(sa_type=sa.String(), unique=True)
    add_ids: bytes = Field(sa_type=sa.LargeBinary())
    remove_ids: bytes = Field(sa_type=sa.LargeBinary())
    size: int
    status: SyncBatchStatus = Field(default="pending", sa_type=sa.String(16))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    last_error: str | None = Field(default=None, sa_type=sa.Text())
    missing: int = 0
    created_at: datetime = _created_at()
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class ApiToken(SQLModel, table=True):
    """A bearer token of the membership API: only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=sa.String(64), unique=True)
    token_hash: str = Field(sa_type=sa.String(64), unique=True)
    prefix: str = Field(sa_type=sa.String(16))
    segments: list[str] = _json(list)
    created_at: datetime = _created_at()
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


LiveMode = Literal["live", "batch"]
TransitionKind = Literal["join", "leave"]


class LiveSegment(SQLModel, table=True):
    """A segment's live/batch classification at apply, and the live consumer's marks:
    the version whose membership it built, and the batch result last reconciled."""

    __tablename__ = "live_segment"
    __table_args__ = (_one_of("mode", LiveMode),)

    segment_id: int = Field(
        primary_key=True, foreign_key="segment.id", sa_column_kwargs={"autoincrement": False}
    )
    version_id: int
    mode: LiveMode = Field(sa_type=sa.String(16))
    reasons: list[str] = _json(list)
    classified_at: datetime = _created_at()
    built_version_id: int | None = None
    reconciled_result_id: int | None = None
    notified_transition_id: int | None = None
    """The last transition a live notice covered (:mod:`commands.live_notices`)."""
    notified_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class LiveState(SQLModel, table=True):
    """One entity's live feature state (:mod:`segments.live.state`, compact JSON)."""

    __tablename__ = "live_state"

    entity_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    data: str = Field(sa_type=sa.Text())
    updated_at: datetime = _created_at()


class LiveEvent(SQLModel, table=True):
    """An applied event id: inserted in the transaction that applies it, so it applies once."""

    __tablename__ = "live_event"

    event_id: str = Field(sa_type=sa.String(128), primary_key=True)
    ts: datetime = Field(sa_type=UTCDateTime(), index=True)
    accepted_at: datetime = Field(sa_type=UTCDateTime())
    applied_at: datetime = Field(sa_type=UTCDateTime())


class LiveMember(SQLModel, table=True):
    """A live segment's current member (dense entity id); when and why it joined is in
    ``live_transition``."""

    __tablename__ = "live_member"

    segment_id: int = Field(
        primary_key=True, foreign_key="segment.id", sa_column_kwargs={"autoincrement": False}
    )
    entity_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})


class LiveTransition(SQLModel, table=True):
    """One live join or leave with its cause: the event (none for the sweep) and clause."""

    __tablename__ = "live_transition"
    __table_args__ = (
        sa.Index("ix_live_transition_segment_id_id", "segment_id", "id"),
        _one_of("kind", TransitionKind),
    )

    id: int | None = Field(default=None, primary_key=True)
    segment_id: int = Field(foreign_key="segment.id")
    entity_id: int
    kind: TransitionKind = Field(sa_type=sa.String(8))
    event_id: str | None = Field(default=None, sa_type=sa.String(128))
    clause: str = Field(sa_type=sa.Text())
    accepted_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    recorded_at: datetime = _created_at()


class LiveDeadLetter(SQLModel, table=True):
    """An event the live path could not apply, with why; the consumer carries on."""

    __tablename__ = "live_dead_letter"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str | None = Field(default=None, sa_type=sa.String(128))
    reason: str = Field(sa_type=sa.Text())
    payload: str = Field(sa_type=sa.Text())
    received_at: datetime = _created_at()


class LiveCounter(SQLModel, table=True):
    """A running count of the live path (``late``: events left to the batch refresh)."""

    __tablename__ = "live_counter"

    name: str = Field(sa_type=sa.String(64), primary_key=True)
    value: int = Field(default=0, sa_type=sa.BigInteger())


TABLES: tuple[type[SQLModel], ...] = (
    Segment,
    SegmentVersion,
    Snapshot,
    SegmentResult,
    Entity,
    Alert,
    Feedback,
    Proposal,
    OutboxMessage,
    SlackEvent,
    Lease,
    SyncDestination,
    SyncState,
    SyncRun,
    SyncBatch,
    ApiToken,
    LiveSegment,
    LiveState,
    LiveEvent,
    LiveMember,
    LiveTransition,
    LiveDeadLetter,
    LiveCounter,
)


ExperimentStatus = Literal["running", "closed", "stopped"]
LearningKind = Literal["change", "experiment", "refresh"]
Verdict = Literal["validated", "refuted", "inconclusive", "observational", "blocked"]


class Experiment(SQLModel, table=True):
    """A holdout experiment on a segment's members, planned before it started."""

    __tablename__ = "experiment"
    __table_args__ = (_one_of("status", ExperimentStatus),)

    id: int | None = Field(default=None, primary_key=True)
    segment_id: int = Field(foreign_key="segment.id", index=True)
    version_id: int = Field(foreign_key="segment_version.id")
    salt: str = Field(sa_type=sa.String())
    kpi: str = Field(sa_type=sa.String())
    kind: str = Field(sa_type=sa.String(16))
    direction: str = Field(sa_type=sa.String(16))
    mde: float
    window_days: int
    holdout_share: float
    also: list[str] = _json(list)
    correction: str = Field(default="holm", sa_type=sa.String(16))
    hypothesis: str = Field(default="", sa_type=sa.Text())
    started_on: date = Field(sa_type=sa.Date())
    ends_on: date = Field(sa_type=sa.Date())
    start_result_id: int = Field(foreign_key="segment_result.id")
    status: ExperimentStatus = Field(default="running", sa_type=sa.String(16))
    started_by: str = Field(sa_type=sa.String())
    plan: dict[str, Any] = _json(dict)
    readout: dict[str, Any] = _json(dict)
    created_at: datetime = _created_at()
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class ExperimentHoldout(SQLModel, table=True):
    """The held-out members of one published result of an experiment's segment."""

    __tablename__ = "experiment_holdout"
    __table_args__ = (sa.UniqueConstraint("experiment_id", "result_id"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id")
    snapshot_id: int = Field(foreign_key="snapshot.id", index=True)
    result_id: int = Field(foreign_key="segment_result.id")
    members: int
    held_out: int
    bitmap: bytes = Field(sa_type=sa.LargeBinary())
    created_at: datetime = _created_at()


class Learning(SQLModel, table=True):
    """What a change or an experiment was for, who decided it and what it did."""

    __tablename__ = "learning"
    __table_args__ = (_one_of("kind", LearningKind), _one_of("verdict", Verdict))

    id: int | None = Field(default=None, primary_key=True)
    segment_id: int | None = Field(default=None, foreign_key="segment.id", index=True)
    kind: LearningKind = Field(sa_type=sa.String(16))
    title: str = Field(sa_type=sa.Text())
    hypothesis: dict[str, Any] = _json(dict)
    reason: str | None = Field(default=None, sa_type=sa.Text())
    decided_by: str | None = Field(default=None, sa_type=sa.String())
    version_id: int | None = Field(default=None, foreign_key="segment_version.id")
    experiment_id: int | None = Field(default=None, foreign_key="experiment.id")
    effect: dict[str, Any] = _json(dict)
    effect_text: str | None = Field(default=None, sa_type=sa.Text())
    verdict: Verdict | None = Field(default=None, sa_type=sa.String(16))
    closed_on: date | None = Field(default=None, sa_type=sa.Date())
    created_at: datetime = _created_at()


class LearningNote(SQLModel, table=True):
    """A note someone added to a learning (from Slack or the CLI)."""

    __tablename__ = "learning_note"

    id: int | None = Field(default=None, primary_key=True)
    learning_id: int = Field(foreign_key="learning.id", index=True)
    author: str = Field(sa_type=sa.String())
    text: str = Field(sa_type=sa.Text())
    created_at: datetime = _created_at()


JobKind = Literal["refresh", "preview"]
JobStatus = Literal["pending", "running", "done", "failed"]


class Job(SQLModel, table=True):
    """Work a person asked for in Slack, done by the worker (see :mod:`store.jobs`).

    ``pending`` until a worker claims it (``running``, a conditional update on status
    and attempts), then ``done`` with ``result`` or ``failed`` with ``error``. The person
    is answered through ``response_url`` while Slack still accepts it, else by DM;
    ``replied_at`` records that the answer went out.
    """

    __tablename__ = "job"
    __table_args__ = (
        _one_of("kind", JobKind),
        _one_of("status", JobStatus),
        sa.Index("ix_job_status_not_before", "status", "not_before"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: JobKind = Field(sa_type=sa.String(16))
    args: dict[str, Any] = _json(dict)
    status: JobStatus = Field(default="pending", sa_type=sa.String(16))
    attempts: int = 0
    requested_by: str | None = Field(default=None, sa_type=sa.String())
    channel: str | None = Field(default=None, sa_type=sa.String())
    response_url: str | None = Field(default=None, sa_type=sa.Text())
    result: dict[str, Any] = _json(dict)
    error: str | None = Field(default=None, sa_type=sa.Text())
    claimed_by: str | None = Field(default=None, sa_type=sa.String())
    not_before: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    created_at: datetime = _created_at()
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    replied_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


TABLES = (*TABLES, Job)


class BriefView(SQLModel, table=True):
    """When a person last read a segment's brief in Slack, and what it showed them: the
    result, its size and the definition version, for "since you last looked"."""

    __tablename__ = "brief_view"
    __table_args__ = (sa.UniqueConstraint("user_id", "segment_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(sa_type=sa.String(32))
    segment_id: int = Field(foreign_key="segment.id")
    result_id: int | None = Field(default=None, foreign_key="segment_result.id")
    size: int | None = None
    version: int
    seen_at: datetime = _created_at()


TABLES = (*TABLES, BriefView)
