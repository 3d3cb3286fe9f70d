"""Training side (the only package that imports torch): labelled text → LSTM classifier → ONNX bundle.

Entry points: :func:`training.cli.main` (the ``lstm-train train | export | evaluate`` command) and
:func:`training.pipeline.train_bundle` (the same pipeline as a function, used by the test fixtures).
"""
