"""``lstm-train tune``: a hyperparameter search over ``train``'s settings with Optuna, chosen on dev.

- :mod:`~training.search.arguments`: tune's options (no torch);
- :mod:`~training.search.space`: the parameters, the default space and the user's changes, checked;
- :mod:`~training.search.settings`: a trial's values as ``fit``'s settings;
- :mod:`~training.search.study`: the storage (SQLite or PostgreSQL), sampler, pruner, budget, workers;
- :mod:`~training.search.objective`: one trial, pruned epoch by epoch on its dev curve;
- :mod:`~training.search.report`: trials table, plots and the manifest's summary;
- :mod:`~training.search.command`: the command from start to the published bundle.
"""
