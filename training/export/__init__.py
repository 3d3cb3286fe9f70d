"""A trained model → a bundle in the store.

- :mod:`~training.export.graph`: torch → ONNX, the parity gate, golden examples, the int8 variant;
- :mod:`~training.export.publish`: evaluate, export and write the bundle (and its int8 variant);
- :mod:`~training.export.plots`: the run's PNG pictures; :mod:`~training.export.drift`: the training
  inputs' distribution recorded in older bundles; :mod:`~training.export.quiet`: harmless export noise
  silenced.
"""
