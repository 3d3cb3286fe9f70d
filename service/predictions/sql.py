"""The SQL sink: SQLite (the embedded default) and PostgreSQL (a log shared by replicas), one code path
through SQLAlchemy Core. Nothing connects until the first use, so a database that is down at start-up
delays the log, not the server; the schema is migrated on the first connection (:mod:`.schema`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from service.errors import InvalidRequest, NotFound, Unavailable
from service.predictions.records import COLUMNS, FeedbackItem, TextMode, kept_text, sha256
from service.predictions.schema import feedback, migrate, predictions

QUEUE_SCAN_ROWS = 20_000  # the newest unlabelled predictions the labelling queue ranks
COMPARE_ROWS = 500_000  # the newest answers a comparison of two versions reads
STRATEGIES = ("margin", "entropy", "disagreement")


def engine_url(url: str) -> str:
    """The SQLAlchemy URL of a log URL: ``postgresql://`` goes through psycopg 3."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class SqlStore:
    def __init__(self, url: str, text_mode: TextMode = "full") -> None:
        self.url = url
        self.text_mode = text_mode
        options: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            path.parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"timeout": 10, "check_same_thread": False}
        else:
            options["connect_args"] = {"connect_timeout": 3}
            options["pool_size"] = 4
        self.engine = sa.create_engine(engine_url(url), **options)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        marker = "%s" if self.engine.dialect.name == "postgresql" else "?"
        self._insert_sql = (
            f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES ({', '.join([marker] * len(COLUMNS))}) "
            "ON CONFLICT (request_id, item) DO NOTHING"
        )
        self._migrated = False
        self._migrating = threading.Lock()

    def _begin(self) -> Any:
        if not self._migrated:
            with self._migrating:
                if not self._migrated:
                    migrate(self.engine)
                    self._migrated = True
        return self.engine.begin()

    # -- the writer's side ----------------------------------------------------------------------------

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows (:data:`records.COLUMNS` order); a row already there (a batch retried after a failure)
        is skipped, not doubled. The driver's own executemany: SQLAlchemy's per-row parameter processing
        cost the writer thread more than the database did."""
        with self._begin() as connection:
            connection.exec_driver_sql(self._insert_sql, list(rows))

    def prune(self, older_than_seconds: float, max_rows: int) -> int:
        """Delete predictions older than the age bound or past the newest ``max_rows`` (0: no bound)."""
        removed = 0
        with self._begin() as connection:
            if older_than_seconds > 0:
                cutoff = time.time() - older_than_seconds
                removed += connection.execute(
                    sa.delete(predictions).where(predictions.c.created < cutoff)
                ).rowcount
            if max_rows > 0:
                edge = connection.execute(
                    sa.select(predictions.c.created)
                    .order_by(predictions.c.created.desc())
                    .offset(max_rows)
                    .limit(1)
                ).scalar()
                if edge is not None:
                    removed += connection.execute(
                        sa.delete(predictions).where(predictions.c.created <= edge)
                    ).rowcount
        return removed

    def close(self) -> None:
        self.engine.dispose()

    # -- feedback ---------------------------------------------------------------------------------------

    def add_feedback(self, items: Sequence[FeedbackItem], labels_of: Any) -> int:
        """Store every item or none: unknown request ids (404) and labels the model lacks (422) refuse the
        whole batch. ``labels_of(model)`` gives a served model's labels (for feedback on a text)."""
        now = time.time()
        with self._guard(), self._begin() as connection:
            rows = [self._feedback_row(connection, entry, labels_of, now) for entry in items]
            answers = [row for row in rows if row["request_id"] is not None]
            texts = [row for row in rows if row["request_id"] is None]
            if answers:
                statement = self._insert(feedback)
                statement = statement.on_conflict_do_update(
                    index_elements=["request_id", "item"],
                    set_={name: statement.excluded[name] for name in ("labels", "source", "created")},
                )
                connection.execute(statement, answers)
            if texts:
                connection.execute(sa.insert(feedback), texts)
        return len(rows)

    def _feedback_row(
        self, connection: Connection, entry: FeedbackItem, labels_of: Any, now: float
    ) -> dict[str, Any]:
        if entry.request_id is not None:
            found = connection.execute(
                sa.select(
                    predictions.c.model, predictions.c.version, predictions.c.text,
                    predictions.c.text_sha256, predictions.c.scores,
                ).where(predictions.c.request_id == entry.request_id, predictions.c.item == entry.item)
            ).first()  # fmt: skip
            if found is None:
                raise NotFound(
                    f"no logged answer with request_id {entry.request_id[:128]!r} and item {entry.item} "
                    "(the id is the answer's X-Request-ID header; unsampled or pruned answers are not logged)"
                )
            model, version, text, digest, scores = found
            known: list[str] = list(scores)
        else:
            assert entry.text is not None and entry.model is not None  # the request schema ensures one form
            model, version, text, digest = (
                entry.model,
                None,
                kept_text(entry.text, self.text_mode),
                sha256(entry.text),
            )
            known = labels_of(model)
        unknown = [label for label in entry.labels if label not in known]
        if unknown:
            raise InvalidRequest(f"{model} has no label {unknown[0][:100]!r}; its labels: {', '.join(known)}")
        return {
            "request_id": entry.request_id, "item": entry.item if entry.request_id is not None else None,
            "created": now, "model": model, "version": version, "text": text, "text_sha256": digest,
            "labels": list(dict.fromkeys(entry.labels)), "source": entry.source,
        }  # fmt: skip

    # -- what feedback gives ----------------------------------------------------------------------------

    def judged(self, model: str, since: float) -> list[tuple[int, list[str], list[str]]]:
        """(version, answered labels, true labels) of answers of ``model`` with feedback since ``since``."""
        joined = predictions.join(
            feedback,
            sa.and_(predictions.c.request_id == feedback.c.request_id, predictions.c.item == feedback.c.item),
        )
        query = sa.select(predictions.c.version, predictions.c.labels, feedback.c.labels).select_from(joined)
        query = query.where(predictions.c.model == model, feedback.c.created >= since)
        with self._guard(), self._begin() as connection:
            return [(int(v), list(p), list(t)) for v, p, t in connection.execute(query)]

    def queue(self, model: str, strategy: str, limit: int) -> list[dict[str, Any]]:
        """Logged texts of ``model`` without feedback, one per distinct text, most useful first."""
        labelled = sa.select(feedback.c.text_sha256).where(feedback.c.model == model)
        query = (
            sa.select(predictions)
            .where(
                predictions.c.model == model,
                predictions.c.text.is_not(None),
                predictions.c.text_sha256.not_in(labelled),
            )
            .order_by(predictions.c.created.desc())
            .limit(QUEUE_SCAN_ROWS)
        )
        with self._guard(), self._begin() as connection:
            candidates = [dict(row._mapping) for row in connection.execute(query)]
        return rank(candidates, strategy)[:limit]

    def labelled(self, model: str) -> list[tuple[str, list[str]]]:
        """(text, true labels) of the feedback on ``model`` that kept its text, the latest per text."""
        query = (
            sa.select(feedback.c.text_sha256, feedback.c.text, feedback.c.labels)
            .where(feedback.c.model == model, feedback.c.text.is_not(None))
            .order_by(feedback.c.created, feedback.c.id)
        )
        with self._guard(), self._begin() as connection:
            latest = {digest: (text, list(labels)) for digest, text, labels in connection.execute(query)}
        return list(latest.values())

    def answers(self, model: str, versions: Sequence[int], since: float) -> list[tuple[Any, ...]]:
        """(version, text_sha256, labels, latency_ms) of the answers of ``model``'s ``versions`` since
        ``since`` (primary, canary and shadow answers alike), oldest first, at most the newest
        :data:`COMPARE_ROWS`."""
        query = (
            sa.select(
                predictions.c.version, predictions.c.text_sha256, predictions.c.labels,
                predictions.c.latency_ms, predictions.c.created,
            )
            .where(
                predictions.c.model == model,
                predictions.c.version.in_(list(versions)),
                predictions.c.created >= since,
            )
            .order_by(predictions.c.created.desc())
            .limit(COMPARE_ROWS)
        )  # fmt: skip
        with self._guard(), self._begin() as connection:
            found = [
                (int(v), sha, list(labels), float(ms)) for v, sha, labels, ms, _ in connection.execute(query)
            ]
        found.reverse()
        return found

    def serving_version(self, model: str) -> int | None:
        """The version that gave the newest primary answer of ``model`` (not a canary's or a shadow's)."""
        query = (
            sa.select(predictions.c.version)
            .where(
                predictions.c.model == model,
                sa.or_(predictions.c.alias.is_(None), predictions.c.alias == "stable"),
            )
            .order_by(predictions.c.created.desc())
            .limit(1)
        )
        with self._guard(), self._begin() as connection:
            found = connection.execute(query).scalar()
        return None if found is None else int(found)

    def truths(self, model: str) -> dict[str, list[str]]:
        """The true labels of every text of ``model`` with feedback (the latest feedback per text)."""
        query = (
            sa.select(feedback.c.text_sha256, feedback.c.labels)
            .where(feedback.c.model == model)
            .order_by(feedback.c.created, feedback.c.id)
        )
        with self._guard(), self._begin() as connection:
            return {digest: list(labels) for digest, labels in connection.execute(query)}

    def _guard(self) -> _Unavailable:
        return _Unavailable()


def rank(candidates: Iterable[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
    """Fold duplicates (same text) and order: least margin, highest entropy, or the most disagreement
    between versions (distinct answers, then least margin)."""
    groups: dict[str, dict[str, Any]] = {}
    for row in candidates:
        group = groups.get(row["text_sha256"])
        if group is None:
            groups[row["text_sha256"]] = {
                **row,
                "seen": 1,
                "answers": {row["top_label"]},
                "versions": {row["version"]},
            }
            continue
        group["seen"] += 1
        group["answers"].add(row["top_label"])
        group["versions"].add(row["version"])
        if row["margin"] < group["margin"]:
            group.update(
                {
                    key: row[key]
                    for key in ("request_id", "item", "version", "scores", "labels", "margin", "entropy")
                }
            )
    ordered = list(groups.values())
    if strategy == "entropy":
        ordered.sort(key=lambda g: (-g["entropy"], g["margin"]))
    elif strategy == "disagreement":
        ordered.sort(key=lambda g: (-len(g["answers"]), g["margin"]))
    else:
        ordered.sort(key=lambda g: (g["margin"], -g["entropy"]))
    for group in ordered:
        group["answers"] = sorted(answer for answer in group["answers"] if answer is not None)
        group["versions"] = sorted(group["versions"])
    return ordered


class _Unavailable:
    """Turns a database error on a route's query into a 503 that says the log is unreachable."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> None:
        if isinstance(error, sa.exc.DBAPIError) and not isinstance(error, sa.exc.IntegrityError):
            raise Unavailable("the prediction log's database is unreachable; try again later") from error


def _sqlite_pragmas(connection: Any, _: object) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the routes) never wait for the writer
    cursor.execute("PRAGMA busy_timeout=10000")  # several workers share one file
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit is not synced; a power cut may lose the last
    cursor.close()
