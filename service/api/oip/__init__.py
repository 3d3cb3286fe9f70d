"""The Open Inference Protocol v2 (KServe v2, Triton's HTTP API) over the engine.

A thin adapter, like the native routes: the wire format lives here, the model is reached only through
:class:`service.engine.inference.Inference`, and texts go through the same micro-batcher as ``/classify``.

- :mod:`service.api.oip.codec`       the binary tensor extension: framing, BYTES elements, numbers
- :mod:`service.api.oip.schemas`     the JSON shapes of requests and answers
- :mod:`service.api.oip.signature`   the tensors a model takes and gives (metadata, config)
- :mod:`service.api.oip.infer`       one inference request: decode, check, run, encode
- :mod:`service.api.oip.routes`      the ``/v2`` routes: server, health, models, infer, statistics
- :mod:`service.api.oip.repository`  the model repository extension (the admin token)
- :mod:`service.api.oip.statistics`  the statistics extension's ``$model_stat`` objects
"""
