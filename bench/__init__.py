"""The benchmark behind ``make bench``: this service vs the servers a user would pick instead (FastAPI +
onnxruntime, LitServe, naive FastAPI + torch) vs the in-process ceiling.

Modules: :mod:`bench.cli` (orchestration, ``python -m bench``), :mod:`bench.loadgen` (closed-loop HTTP
client), :mod:`bench.servers` (subprocesses pinned to CPUs, always killed), :mod:`bench.ceiling`
(in-process onnxruntime), :mod:`bench.ort_server`, :mod:`bench.litserve_server`,
:mod:`bench.naive_torch_server`, :mod:`bench.trivial_server`, :mod:`bench.oip_client` (the ``/v2`` row),
:mod:`bench.texts` (test-split samples, short news snippets), :mod:`bench.report` (tables, ratios,
targets), :mod:`bench.inprocess` (CPU per request of the app in process, for profiling).
"""
