"""The naive alternative the benchmark compares against: FastAPI + PyTorch eager, inference inside the
async endpoint (so the event loop waits for every forward pass), the same models and tokenizer.

The bundles ship no torch checkpoint, so the weights are read back from the ONNX graph's initializers
(:func:`state_dict_from_onnx`) and checked against the manifest's golden logits, which torch computed at
export: the server refuses to start if they differ by more than 1e-4. Same model, same numbers.

Run: ``python -m bench.naive_torch_server --model-store model_store --port 8001``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import torch
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from onnx import numpy_helper
from pydantic import BaseModel

from service.bundle import PARITY_TOLERANCE, Bundle, list_models, load_bundle
from service.tokenizer import UNK_ID
from training.model.classifier import LSTMClassifier, ModelConfig

GOLDEN_TOLERANCE = PARITY_TOLERANCE
# ONNX LSTM gates are stacked i, o, f, c; torch stacks i, f, g(=c), o.
_ONNX_TO_TORCH_GATES = (0, 2, 3, 1)


def _reorder_gates(matrix: np.ndarray, hidden_dim: int) -> torch.Tensor:
    blocks = [matrix[gate * hidden_dim : (gate + 1) * hidden_dim] for gate in _ONNX_TO_TORCH_GATES]
    return torch.from_numpy(np.ascontiguousarray(np.concatenate(blocks)))


def state_dict_from_onnx(model_path: Path, config: ModelConfig) -> dict[str, torch.Tensor]:
    """The ``LSTMClassifier`` weights, read from the exported graph (one LSTM node per layer)."""
    graph = onnx.load(str(model_path)).graph
    tensors = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:  # constants the exporter left as nodes rather than initializers
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    producer = {output: node for node in graph.node for output in node.output}

    embedding = tensors[producer["embedding_matrix"].input[0]]
    state = {"embedding.weight": torch.from_numpy(embedding.copy())}
    lstm_nodes = [node for node in graph.node if node.op_type == "LSTM"]
    if len(lstm_nodes) != config.num_layers:
        raise ValueError(f"expected {config.num_layers} LSTM nodes, found {len(lstm_nodes)} (an int8 graph?)")
    hidden = config.hidden_dim
    for layer, node in enumerate(lstm_nodes):  # graph order is layer order: each layer reads the previous
        weights, recurrent, bias = (
            tensors[name] for name in node.input[1:4]
        )  # [dirs, 4H, in], [dirs, 4H, H], [dirs, 8H]
        for direction in range(config.directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            state[f"lstm.weight_ih{suffix}"] = _reorder_gates(weights[direction], hidden)
            state[f"lstm.weight_hh{suffix}"] = _reorder_gates(recurrent[direction], hidden)
            state[f"lstm.bias_ih{suffix}"] = _reorder_gates(bias[direction][: 4 * hidden], hidden)
            state[f"lstm.bias_hh{suffix}"] = _reorder_gates(bias[direction][4 * hidden :], hidden)
    state.update(_classifier_weights(producer["logits"], producer, tensors))
    return state


def _classifier_weights(node: onnx.NodeProto, producer: dict, tensors: dict) -> dict[str, torch.Tensor]:
    """``logits = Gemm(pooled, W, b, transB=1)``, or ``Add(MatMul(pooled, W^T), b)``."""
    if node.op_type == "Gemm":
        weight, bias = tensors[node.input[1]], tensors[node.input[2]]
        trans_b = next((attribute.i for attribute in node.attribute if attribute.name == "transB"), 0)
        weight = weight if trans_b else weight.T
    elif node.op_type == "Add":
        matmul_output, bias_name = node.input if node.input[0] in producer else reversed(node.input)
        weight, bias = tensors[producer[matmul_output].input[1]].T, tensors[bias_name]
    else:
        raise ValueError(f"unexpected node {node.op_type} producing logits")
    return {
        "classifier.weight": torch.from_numpy(np.array(weight, dtype=np.float32, order="C")),
        "classifier.bias": torch.from_numpy(bias.copy()),
    }


class TorchModel:
    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        config = ModelConfig.from_dict(bundle.manifest.model)
        self.network = LSTMClassifier(config).eval()
        self.network.load_state_dict(state_dict_from_onnx(bundle.model_path, config))
        self.worst_golden_difference = self._check_golden()

    def logits(self, id_lists: list[list[int]]) -> torch.Tensor:
        lengths = torch.tensor([len(ids) for ids in id_lists])
        ids = torch.zeros((len(id_lists), int(lengths.max())), dtype=torch.long)
        for row, token_ids in enumerate(id_lists):
            ids[row, : len(token_ids)] = torch.tensor(token_ids)
        with torch.inference_mode():
            return self.network(ids, lengths)[0]

    def _check_golden(self) -> float:
        worst = 0.0
        for example in self.bundle.manifest.golden:
            got = self.logits([list(example.ids)])[0].numpy()
            worst = max(worst, float(np.abs(got - np.asarray(example.logits)).max()))
        if worst > GOLDEN_TOLERANCE:
            raise SystemExit(
                f"{self.bundle.name}: torch weights read from ONNX miss the golden logits by {worst:.2e}"
            )
        return worst


class ClassifyRequest(BaseModel):
    text: str | None = None
    texts: list[str] | None = None
    model: str | None = None


def create_app(store: Path) -> FastAPI:
    models = {
        name: TorchModel(load_bundle(store / name / str(versions[-1])))
        for name, versions in list_models(store).items()
    }
    default = sorted(models)[0]
    app = FastAPI(title="naive FastAPI + torch eager")

    @app.get("/readyz")
    async def ready() -> dict:
        return {
            "status": "ready",
            "golden_max_abs_diff": {name: model.worst_golden_difference for name, model in models.items()},
        }

    @app.post("/classify")
    async def classify(request: ClassifyRequest) -> JSONResponse:
        model = models.get(request.model or default)
        if model is None:
            raise HTTPException(404, f"unknown model {request.model!r}")
        texts = [request.text] if request.text is not None else (request.texts or [])
        tokenizer, labels = model.bundle.tokenizer, model.bundle.labels
        id_lists = [tokenizer.encode(text).ids or [UNK_ID] for text in texts]
        probabilities = torch.softmax(
            model.logits(id_lists), dim=1
        ).tolist()  # blocks the loop: the naive part
        results = []
        for row in probabilities:
            best = max(range(len(labels)), key=row.__getitem__)
            results.append(
                {"label": labels[best], "score": row[best], "scores": dict(zip(labels, row, strict=True))}
            )
        return JSONResponse({"model": model.bundle.name, "version": model.bundle.version, "results": results})

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-store", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.model_store), host=args.host, port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
