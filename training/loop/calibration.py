"""Temperature scaling (Guo et al. 2017) for single-label models, and the expected calibration error.

One number T, fitted on dev by minimising the negative log-likelihood of softmax(logits / T), divides the
logits at serving. It never changes which label wins (argmax is unchanged by a positive scale), only how
confident the probabilities are; the manifest records the expected calibration error before and after on
test.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(_log_softmax(np.asarray(logits, dtype=np.float64) / temperature))


def negative_log_likelihood(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    log_probabilities = _log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-log_probabilities[np.arange(len(targets)), targets].mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The T in :data:`TEMPERATURE_RANGE` minimising dev NLL (searched on log T, a 1-D bounded problem)."""
    targets = np.asarray(targets, dtype=np.int64)
    if not len(targets):
        return 1.0
    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, targets, float(np.exp(log_t))),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: texts binned by their top probability into ``bins`` equal-width bins; the mean
    over texts of |accuracy − confidence| of their bin."""
    if not len(targets):
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(targets)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin b holds (edges[b], edges[b + 1]]; a confidence of exactly 0 cannot occur for a softmax
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    error = 0.0
    for bin_index in range(bins):
        members = which == bin_index
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def calibrate(
    dev_logits: np.ndarray, dev_targets: np.ndarray, test_logits: np.ndarray, test_targets: np.ndarray
) -> dict[str, Any]:
    """Fit T on dev; ECE and NLL on test before (T = 1) and after. Test texts never influence T."""
    temperature = fit_temperature(dev_logits, dev_targets)
    evaluated = test_logits if len(test_targets) else dev_logits
    targets = test_targets if len(test_targets) else dev_targets
    before = softmax(evaluated)
    after = softmax(evaluated, temperature)
    return {
        "method": "temperature scaling (softmax(logits / T)), T fitted on dev by NLL",
        "temperature": round(temperature, 4),
        "split": "test" if len(test_targets) else "dev",
        "bins": ECE_BINS,
        "ece_before": round(expected_calibration_error(before, targets), 4),
        "ece_after": round(expected_calibration_error(after, targets), 4),
        "nll_before": round(negative_log_likelihood(evaluated, targets), 4),
        "nll_after": round(negative_log_likelihood(evaluated, targets, temperature), 4),
    }
