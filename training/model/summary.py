"""Parameter counts per layer, with the recurrent cell's arithmetic spelled out (see training.model.cells)."""

from __future__ import annotations

from typing import Any

from training.model.cells import formula_text, layer_parameter_counts
from training.model.classifier import RecurrentClassifier


def parameter_summary(model: RecurrentClassifier) -> dict[str, Any]:
    """``{total, trainable, per_layer: {name: count}, cell, recurrent_layers: [...], recurrent_formula}``.

    ``per_layer`` names the recurrent stack by its cell (``lstm``, ``gru`` or ``rnn``)."""
    config = model.config
    per_layer: dict[str, int] = {}
    for name, module in model.named_children():
        count = sum(parameter.numel() for parameter in module.parameters())
        if count:
            per_layer[config.cell if name == "recurrent" else name] = count
    layers = []
    for layer in range(config.num_layers):
        input_dim = config.embedding_dim if layer == 0 else config.hidden_dim * config.directions
        layers.append(
            layer_parameter_counts(model.cell, input_dim, config.hidden_dim, config.directions, layer)
        )
    # cross-check the arithmetic against what PyTorch actually allocated
    if sum(item["pytorch_total"] for item in layers) != per_layer[config.cell]:
        raise RuntimeError(f"the {config.cell} parameter formula disagrees with what PyTorch allocated")
    formula = "; ".join(
        f"layer {item['layer']}: {item['directions']} × {item['pytorch_formula']}" for item in layers
    )
    return {
        "total": sum(per_layer.values()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "per_layer": per_layer,
        "cell": config.cell,
        "recurrent_layers": layers,
        "recurrent_formula": f"{formula_text(model.cell)}: {formula}",
        "embedding_formula": f"{config.vocab_size} × {config.embedding_dim}",
        "classifier_formula": f"({config.hidden_dim * config.directions} + 1) × {config.num_labels}",
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable table for the training log."""
    lines = [f"{'layer':<12}{'parameters':>14}"]
    lines += [f"{name:<12}{count:>14,}" for name, count in summary["per_layer"].items()]
    lines.append(f"{'total':<12}{summary['total']:>14,}  (trainable {summary['trainable']:,})")
    for item in summary["recurrent_layers"]:
        lines.append(
            f"  {item['cell']} layer {item['layer']}: textbook {item['textbook_formula']} per direction; "
            f"PyTorch {item['pytorch_formula']}; × {item['directions']} direction(s)"
        )
    return "\n".join(lines)
