"""A trivial FastAPI app: ``POST /classify`` answers a constant without reading the body.

It costs what HTTP and routing cost and nothing else, so the load generator's rate against it is the
most any server could show on this machine; it being far above the service's rate proves the load
generator is not what limits the service. Run: ``uvicorn bench.trivial_server:app``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

_ANSWER = (
    b'{"model":"constant","version":1,"results":[{"label":"pos","score":1.0,"scores":{"neg":0.0,"pos":1.0}}]}'
)

app = FastAPI(title="trivial endpoint")


@app.get("/readyz")
async def ready() -> Response:
    return Response(b'{"status":"ready"}', media_type="application/json")


@app.post("/classify")
async def classify() -> Response:
    return Response(_ANSWER, media_type="application/json")
