"""What a user who knows onnxruntime would write first: FastAPI + onnxruntime, no batching. Each request
is tokenized and run alone inside the async endpoint (one onnxruntime thread, the service's session
settings), the same models, tokenizer and answer shape as the service's ``POST /classify``.

Run: ``python -m bench.ort_server --model-store model_store --port 8002``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service.bundle import list_models, load_bundle
from service.engine.runtime import create_session, pad_batch, softmax
from service.tokenizer import UNK_ID


class ClassifyRequest(BaseModel):
    text: str | None = None
    texts: list[str] | None = None
    model: str | None = None


def create_app(store: Path) -> FastAPI:
    bundles = {
        name: load_bundle(store / name / str(versions[-1])) for name, versions in list_models(store).items()
    }
    sessions = {name: create_session(str(bundle.model_path), 1) for name, bundle in bundles.items()}
    default = sorted(bundles)[0]
    app = FastAPI(title="FastAPI + onnxruntime, no batching")

    @app.get("/readyz")
    async def ready() -> dict:
        return {"status": "ready"}

    @app.post("/classify")
    async def classify(request: ClassifyRequest) -> JSONResponse:
        name = request.model or default
        if name not in bundles:
            raise HTTPException(404, f"unknown model {request.model!r}")
        bundle = bundles[name]
        texts = [request.text] if request.text is not None else (request.texts or [])
        ids, lengths = pad_batch([bundle.tokenizer.encode(text).ids or [UNK_ID] for text in texts])
        (logits,) = sessions[name].run(["logits"], {"ids": ids, "lengths": lengths})
        labels = bundle.labels
        results = []
        for row in softmax(logits).tolist():
            best = max(range(len(labels)), key=row.__getitem__)
            results.append(
                {"label": labels[best], "score": row[best], "scores": dict(zip(labels, row, strict=True))}
            )
        return JSONResponse({"model": bundle.name, "version": bundle.version, "results": results})

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-store", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.model_store), host=args.host, port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
