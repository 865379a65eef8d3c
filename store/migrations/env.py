"""Alembic environment: metadata from ``store.models``, the database from the caller.

Where the database comes from, first match wins:

1. ``config.attributes["connection"]``: an open connection (``store.db.upgrade``);
2. ``config.attributes["url"]``;
3. ``-x url=...`` on the ``alembic`` command line;
4. the ``DATABASE_URL`` environment variable;
5. ``sqlite:///segops.db``.

SQLite migrations run in batch mode with foreign keys switched off (table rebuilds
would otherwise trip them) and are checked with ``PRAGMA foreign_key_check`` after.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Connection
from sqlmodel.sql.sqltypes import AutoString

from store.db import make_engine, normalise_url
from store.models import UTCDateTime, metadata

DEFAULT_URL = "sqlite:///segops.db"

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("DATABASE_URL")
        or DEFAULT_URL
    )
    return normalise_url(url).render_as_string(hide_password=False)


def _render_item(type_: str, obj: Any, _context: Any) -> str | bool:
    """Render the models' custom column types as the plain SQLAlchemy types they store."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):
        return "sa.String()"
    return False


# Tables in the segops database that Alembic does not own: APScheduler's job store
# (``segops worker``) creates and migrates its own table.
FOREIGN_TABLES = frozenset({"segops_jobs"})


def _include_object(
    _obj: Any, name: str | None, type_: str, reflected: bool, _compare: Any
) -> bool:
    return not (type_ == "table" and reflected and name in FOREIGN_TABLES)


def _options(sqlite: bool) -> dict[str, Any]:
    return {
        "target_metadata": metadata,
        "include_object": _include_object,
        "render_as_batch": sqlite,
        "compare_type": True,
        "render_item": _render_item,
    }


def run_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade --sql``)."""
    url = _url()
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_options(url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


def _migrate(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        context.configure(connection=connection, **_options(sqlite))
        with context.begin_transaction():
            context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left dangling foreign keys: {broken[:5]}")
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def run_online() -> None:
    """Run the migrations against a live database."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
