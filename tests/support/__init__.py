"""Helpers shared by the test folders (importable as ``support``: pytest puts ``tests/`` on ``sys.path``).

- :mod:`support.data`      the made-up tiny data sets the fixture bundles were trained on
- :mod:`support.stores`    the committed fixture bundles, private store copies, new versions, manifest edits
- :mod:`support.apps`      an in-process app with its real lifespan, the admin token, /metrics parsing
- :mod:`support.live_server`  ``python -m service serve`` in a subprocess (its own process group), stdlib
  clients and a load generator
- :mod:`support.network`   ``free_port``
- :mod:`support.training`  a tiny bundle trained at test time (needs torch)
"""
