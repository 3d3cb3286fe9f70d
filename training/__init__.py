"""Training side (the only package that imports torch): labelled text → LSTM classifier → ONNX bundle.

Where things go:

- :mod:`training.data`: reading data files (CSV/TSV/JSONL, multi-label cells, built-in data sets), the
  split, ``recorded_splits`` (a bundle's own split, rebuilt) and the checks made before a run;
- :mod:`training.model`: the classifier, its recurrent cells, word2vec embeddings, parameter counts;
- :mod:`training.loop`: the training loop, batches, objectives, metrics, thresholds, calibration, the
  baseline, scoring, seeds, distributed training;
- :mod:`training.export`: ONNX export with the parity gate, the bundle, plots, drift;
- :mod:`training.cli`: the ``lstm-train train | export | evaluate`` command (:func:`training.cli.main`),
  its subcommands and :func:`training.cli.pipeline.train_bundle` (the same pipeline as a function, used by
  the test fixtures).

The sub-packages import each other in one direction only: cli → export → loop → model, data.
"""
