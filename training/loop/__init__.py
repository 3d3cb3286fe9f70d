"""Training a model and measuring it.

- :mod:`~training.loop.trainer`: the loop (early stopping, checkpoints, resume) over
  :mod:`~training.loop.batches`, under :mod:`~training.loop.distributed` when launched by torchrun;
- :mod:`~training.loop.config`: the run's settings; :mod:`~training.loop.objectives`: loss and dev metric;
- :mod:`~training.loop.metrics`: accuracy, F1 and the per-class report; :mod:`~training.loop.thresholds`:
  multi-label thresholds; :mod:`~training.loop.calibration`: the temperature;
- :mod:`~training.loop.baseline`: the TF-IDF + logistic-regression baseline;
- :mod:`~training.loop.scoring`: all of it on a trained model's split; :mod:`~training.loop.seed_report`:
  the spread over seeds recorded in a manifest.
"""
