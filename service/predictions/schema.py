"""The SQL tables of the prediction log and the migrations that create and upgrade them.

A migration is a numbered function; :func:`migrate` applies, in one transaction each, those above the
number the database records in ``prediction_log_schema``, so a new server upgrades an old log on start
and several servers starting together (PostgreSQL: under an advisory lock; SQLite: its write lock) apply
each migration once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("item", sa.Integer, primary_key=True),  # the text's place in its request
    sa.Column("created", sa.Float, nullable=False),  # Unix seconds
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("alias", sa.String(128), nullable=True),  # a role (canary, shadow) the version answered as
    sa.Column("route", sa.String(128), nullable=False),
    sa.Column("text", sa.Text, nullable=True),  # NULL when the text is kept as its hash only
    sa.Column("text_sha256", sa.String(64), nullable=False),
    sa.Column("scores", sa.JSON, nullable=False),  # {label: score}
    sa.Column("labels", sa.JSON, nullable=False),  # the answer's label(s)
    sa.Column("top_label", sa.String(256), nullable=True),
    sa.Column("margin", sa.Float, nullable=False),
    sa.Column("entropy", sa.Float, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
)
sa.Index("predictions_model_created", predictions.c.model, predictions.c.created)
sa.Index("predictions_created", predictions.c.created)
sa.Index("predictions_text_sha256", predictions.c.text_sha256)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=True),  # NULL: feedback on a text, not an answer
    sa.Column("item", sa.Integer, nullable=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("text_sha256", sa.String(64), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),  # the true label(s)
    sa.Column("source", sa.String(256), nullable=True),
    sa.UniqueConstraint("request_id", "item", name="feedback_answer"),
)
sa.Index("feedback_model_created", feedback.c.model, feedback.c.created)
sa.Index("feedback_text_sha256", feedback.c.text_sha256)

schema_version = sa.Table("prediction_log_schema", metadata, sa.Column("version", sa.Integer, nullable=False))


def _v1(connection: Connection) -> None:
    for table in (predictions, feedback):
        table.create(connection, checkfirst=True)


MIGRATIONS: list[Callable[[Connection], None]] = [_v1]  # MIGRATIONS[n - 1] brings the log to version n


def current_version(connection: Connection) -> int:
    if not sa.inspect(connection).has_table(schema_version.name):
        return 0
    return int(connection.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)


def migrate(engine: Engine, migrations: list[Callable[[Connection], None]] = MIGRATIONS) -> int:
    """Bring the database to the newest schema; the version it is at afterwards."""
    for attempt in range(5):
        try:
            return _migrate(engine, migrations)
        except sa.exc.OperationalError:
            # SQLite has no advisory lock (and pysqlite commits DDL at once): workers starting together may
            # race to create a table; the loser waits and finds it done.
            if attempt == 4 or engine.dialect.name != "sqlite":
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _migrate(engine: Engine, migrations: list[Callable[[Connection], None]]) -> int:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(7400125)"))
        schema_version.create(connection, checkfirst=True)
        version = current_version(connection)
        if version > len(migrations):
            raise RuntimeError(
                f"the prediction log is at schema version {version}, newer than this server knows "
                f"({len(migrations)}); upgrade the server"
            )
        for number in range(version + 1, len(migrations) + 1):
            migrations[number - 1](connection)
            connection.execute(sa.delete(schema_version))
            connection.execute(sa.insert(schema_version).values(version=number))
        return max(version, len(migrations))
