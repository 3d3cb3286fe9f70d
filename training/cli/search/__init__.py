"""``lstm-train tune``: a hyperparameter search over ``train``'s settings with Optuna, chosen on dev.

- :mod:`~training.cli.search.arguments`: tune's options (no torch);
- :mod:`~training.cli.search.space`: the parameters, the default space and the user's changes, checked;
- :mod:`~training.cli.search.settings`: a trial's values as ``fit``'s settings;
- :mod:`~training.cli.search.study`: the storage (SQLite or PostgreSQL), sampler, pruner, budget, workers;
- :mod:`~training.cli.search.objective`: one trial, pruned epoch by epoch on its dev curve;
- :mod:`~training.cli.search.report`: trials table, plots and the manifest's summary;
- :mod:`~training.cli.search.command`: the command from start to the published bundle.
"""
