"""The HTTP edge. Reaches models only through the engine's verbs (:class:`service.engine.engine.Engine`).

One folder per wire format, each decoding its requests, calling one verb and encoding the result:

- :mod:`service.api.native`      the service's own routes (``/classify``, ``/tokenize``, ``/embed``, ...),
                                 their schemas and answers, and the operations routes (health, models,
                                 metrics, admin, the inspector page, the API docs)
- :mod:`service.api.oip`         Open Inference Protocol v2 (``/v2``): codec, signature, infer, repository
- :mod:`service.api.tei`         text-embeddings-inference's classifier routes (``/predict``, ``/info``)

What they share:

- :mod:`service.api.app`         ``create_app``: middleware, routers, the lifespan that starts the engine
- :mod:`service.api.middleware`  request id, deadline, timing headers, metrics, access log, body limit
- :mod:`service.api.hotpath`     hot routes: answered past FastAPI, each declared once (its FastAPI twin,
                                 which documents it, is generated from the same declaration)
- :mod:`service.api.bodies`      the one JSON body parser, for FastAPI routes and hot routes alike
- :mod:`service.api.common`      the model name and version rules, the error body and its documentation
- :mod:`service.api.streaming`   vector answers sent within their reservation of the vector budget
- :mod:`service.api.deps`        what a route needs (``Services``: settings, the engine, the coordinator)
- :mod:`service.api.security`    the API key and the admin token
- :mod:`service.api.errors`      the error vocabulary as HTTP answers, and the exception handlers
- ``static/inspector/``          the page ``GET /inspect`` serves (:mod:`service.api.native.inspect`)
- ``static/swagger-ui/``         Swagger UI, served with ``GET /docs`` (:mod:`service.api.native.docs`)
"""
