"""Labelled texts in, a checked, deduplicated, seeded train/dev/test split out.

- :mod:`~training.data.reading`: a CSV, TSV or JSONL file → examples (``read_labelled``, the one entry for
  reading a data file); :mod:`~training.data.delimited`: the CSV/TSV bytes → rows it uses;
- :mod:`~training.data.multilabel`: label cells → label sets, the multi-label split;
- :mod:`~training.data.builtin`: the built-in data sets; :mod:`~training.data.datasets`: generated ones;
- :mod:`~training.data.splits`: deduplication and the stratified split (:class:`Splits`);
- :mod:`~training.data.source`: which data a run uses (``DataSpec``) and ``recorded_splits``, the split a
  bundle or checkpoint was trained on, rebuilt;
- :mod:`~training.data.preflight`: everything checked before a run trains.
"""
