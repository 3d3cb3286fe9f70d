"""LitServe with its own dynamic batching, serving the same ONNX models with onnxruntime: what a user who
picks a serving framework would run. ``POST /classify`` takes the service's body (``{"model", "text"}``)
and answers in its shape; LitServe groups up to ``--max-batch-size`` requests that arrive within
``--batch-timeout`` seconds into one ``predict`` call (its inference worker is a separate process, fed
through queues). Texts of one batch are grouped by model and padded together.

Run: ``python -m bench.litserve_server --model-store model_store --port 8003``.
"""

import argparse
from pathlib import Path
from typing import Any

import litserve as ls

from service.bundle import list_models, load_bundle
from service.engine.runtime import create_session, pad_batch, softmax
from service.tokenizer import UNK_ID


class ClassifierAPI(ls.LitAPI):  # no "from __future__ import annotations": LitServe reads the hints
    def __init__(self, store: Path, **options: Any) -> None:
        super().__init__(**options)
        self.store = store

    def setup(self, device: str) -> None:
        self.bundles = {
            name: load_bundle(self.store / name / str(versions[-1]))
            for name, versions in list_models(self.store).items()
        }
        self.sessions = {name: create_session(str(b.model_path), 1) for name, b in self.bundles.items()}
        self.default = sorted(self.bundles)[0]

    def decode_request(self, request: dict[str, Any]) -> tuple[str, str]:
        name = request.get("model") or self.default
        return name, request["text"]

    def predict(self, batch: list[tuple[str, str]]) -> list[tuple[str, list[float]]]:
        answers: list[tuple[str, list[float]] | None] = [None] * len(batch)
        for name in {name for name, _ in batch}:
            positions = [index for index, (model, _) in enumerate(batch) if model == name]
            tokenizer = self.bundles[name].tokenizer
            ids, lengths = pad_batch([tokenizer.encode(batch[i][1]).ids or [UNK_ID] for i in positions])
            (logits,) = self.sessions[name].run(["logits"], {"ids": ids, "lengths": lengths})
            for index, row in zip(positions, softmax(logits).tolist(), strict=True):
                answers[index] = (name, row)
        return answers  # type: ignore[return-value]

    def encode_response(self, output: tuple[str, list[float]]) -> dict[str, Any]:
        name, row = output
        bundle = self.bundles[name]
        labels = bundle.labels
        best = max(range(len(labels)), key=row.__getitem__)
        result = {"label": labels[best], "score": row[best], "scores": dict(zip(labels, row, strict=True))}
        return {"model": bundle.name, "version": bundle.version, "results": [result]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-store", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8003)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout", type=float, default=0.003, help="seconds")
    args = parser.parse_args(argv)
    api = ClassifierAPI(
        args.model_store,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
        api_path="/classify",
    )
    server = ls.LitServer(api, accelerator="cpu", healthcheck_path="/readyz")
    server.run(host=args.host, port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
