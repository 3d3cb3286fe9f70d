"""The engine: bundles in, scores out. Runtime sessions, golden-example verification, the registry of
served versions (with the admin changes every worker applies, :mod:`service.engine.coordination`), the
micro-batcher and inference, and the explanations built on them (:mod:`service.engine.explain`). Knows
nothing of HTTP: no fastapi, starlette or ``service.api`` import (tests/test_import_rules.py enforces it)."""
