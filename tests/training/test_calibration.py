"""Temperature scaling and the expected calibration error on numbers whose answer is known."""

from __future__ import annotations

import numpy as np

from training.loop.calibration import calibrate, expected_calibration_error, fit_temperature, softmax


def _overconfident(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a 3-class model whose true calibrated logits are ``z``, reported as ``4 z``."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 1.0, (count, 3))
    probabilities = softmax(true_logits)
    targets = np.array([rng.choice(3, p=row) for row in probabilities])
    return 4.0 * true_logits, targets


def test_fitted_temperature_undoes_a_known_overconfidence() -> None:
    logits, targets = _overconfident(4000, seed=1)
    assert abs(fit_temperature(logits, targets) - 4.0) < 0.4


def test_calibration_lowers_test_ece_and_keeps_the_argmax() -> None:
    dev_logits, dev_targets = _overconfident(2000, seed=2)
    test_logits, test_targets = _overconfident(2000, seed=3)
    report = calibrate(dev_logits, dev_targets, test_logits, test_targets)
    assert report["split"] == "test"
    assert report["ece_after"] < report["ece_before"] / 2, report
    assert report["nll_after"] < report["nll_before"]
    scaled = softmax(test_logits, report["temperature"])
    assert (scaled.argmax(1) == test_logits.argmax(1)).all()


def test_ece_is_zero_for_a_perfectly_calibrated_bin_and_the_gap_otherwise() -> None:
    probabilities = np.array([[0.8, 0.2]] * 10)
    targets = np.array([0] * 8 + [1] * 2)  # 80 % right at 0.8 confidence
    assert expected_calibration_error(probabilities, targets) < 1e-9
    assert abs(expected_calibration_error(probabilities, np.zeros(10, dtype=int)) - 0.2) < 1e-9
