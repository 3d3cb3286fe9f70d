"""The benchmark behind ``make bench``: this service vs the naive FastAPI + torch server vs the ceiling.

Modules: :mod:`bench.cli` (orchestration, ``python -m bench``), :mod:`bench.loadgen` (closed-loop HTTP
client), :mod:`bench.servers` (subprocesses pinned to CPUs, always killed), :mod:`bench.ceiling`
(in-process onnxruntime), :mod:`bench.naive_torch_server`, :mod:`bench.trivial_server`,
:mod:`bench.texts` (test-split samples), :mod:`bench.report` (tables, ratios, targets).
"""
