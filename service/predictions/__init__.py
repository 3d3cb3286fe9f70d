"""The prediction log: every answered classification as a record, feedback on it, and what both give.

- :mod:`service.predictions.records` turns an engine answer into rows (the text kept whole, hashed or
  redacted, by setting);
- :mod:`service.predictions.log` holds them in a bounded queue that a background thread writes in batches,
  so that a slow or absent sink never delays or fails a request (records past the bound are dropped and
  counted);
- :mod:`service.predictions.sql` is the SQL sink (SQLite or PostgreSQL through SQLAlchemy Core, one code
  path) with its migrations, feedback, live quality and the labelling queue;
  :mod:`service.predictions.jsonl` the rotating JSON-lines sink for log shippers.

The engine calls :meth:`service.predictions.log.PredictionLog.note` once per answered classification; the
HTTP side lives in :mod:`service.api.learning`.
"""
