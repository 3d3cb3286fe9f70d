"""Parameter counts per layer, with the LSTM's arithmetic spelled out."""

from __future__ import annotations

from typing import Any

from training.model import LSTMClassifier


def lstm_layer_counts(input_dim: int, hidden_dim: int, directions: int, layer: int) -> dict[str, Any]:
    """One stacked layer. Each of the 4 gates (input, forget, cell, output) has an input matrix
    (hidden × input), a recurrent matrix (hidden × hidden) and a bias: the textbook count is
    4 × (input + hidden + 1) × hidden per direction. PyTorch (like cuDNN) keeps two bias vectors,
    b_ih and b_hh, so it really stores 4 × (input + hidden + 2) × hidden per direction."""
    textbook = 4 * (input_dim + hidden_dim + 1) * hidden_dim
    pytorch = 4 * (input_dim + hidden_dim + 2) * hidden_dim
    return {
        "layer": layer,
        "input_dim": input_dim,
        "hidden_dim": hidden_dim,
        "directions": directions,
        "textbook_per_direction": textbook,
        "textbook_formula": f"4 × ({input_dim} + {hidden_dim} + 1) × {hidden_dim} = {textbook}",
        "pytorch_per_direction": pytorch,
        "pytorch_formula": f"4 × ({input_dim} + {hidden_dim} + 2) × {hidden_dim} = {pytorch} (two biases)",
        "pytorch_total": pytorch * directions,
    }


def parameter_summary(model: LSTMClassifier) -> dict[str, Any]:
    """``{total, trainable, per_layer: {name: count}, lstm_layers: [...], lstm_formula: str}``."""
    config = model.config
    per_layer: dict[str, int] = {}
    for name, module in model.named_children():
        count = sum(parameter.numel() for parameter in module.parameters())
        if count:
            per_layer[name] = count
    layers = []
    for layer in range(config.num_layers):
        input_dim = config.embedding_dim if layer == 0 else config.hidden_dim * config.directions
        layers.append(lstm_layer_counts(input_dim, config.hidden_dim, config.directions, layer))
    # cross-check the arithmetic against what PyTorch actually allocated
    if sum(item["pytorch_total"] for item in layers) != per_layer["lstm"]:
        raise RuntimeError("the LSTM parameter formula disagrees with the parameters PyTorch allocated")
    formula = "; ".join(
        f"layer {item['layer']}: {item['directions']} × {item['pytorch_formula']}" for item in layers
    )
    return {
        "total": sum(per_layer.values()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "per_layer": per_layer,
        "lstm_layers": layers,
        "lstm_formula": (
            "per direction and layer 4 × (input + hidden + 1) × hidden (4 gates, each an input matrix, a "
            "recurrent matrix and one bias); PyTorch stores two biases (b_ih, b_hh), hence "
            f"4 × (input + hidden + 2) × hidden: {formula}"
        ),
        "embedding_formula": f"{config.vocab_size} × {config.embedding_dim}",
        "classifier_formula": f"({config.hidden_dim * config.directions} + 1) × {config.num_labels}",
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable table for the training log."""
    lines = [f"{'layer':<12}{'parameters':>14}"]
    lines += [f"{name:<12}{count:>14,}" for name, count in summary["per_layer"].items()]
    lines.append(f"{'total':<12}{summary['total']:>14,}  (trainable {summary['trainable']:,})")
    for item in summary["lstm_layers"]:
        lines.append(
            f"  lstm layer {item['layer']}: textbook {item['textbook_formula']} per direction; "
            f"PyTorch {item['pytorch_formula']}; × {item['directions']} direction(s)"
        )
    return "\n".join(lines)
