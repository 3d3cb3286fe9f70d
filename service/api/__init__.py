"""The HTTP edge. Reaches models only through :mod:`service.engine`.

- :mod:`service.api.app`         ``create_app``: middleware, routers, the lifespan that loads the models
- :mod:`service.api.middleware`  request id, deadline, timing headers, metrics, access log, body limit
- :mod:`service.api.hotpath`     hot routes: the table of routes answered past FastAPI (``POST /classify``)
- :mod:`service.api.bodies`      the one JSON body parser, for FastAPI routes and hot routes alike
- :mod:`service.api.texts`       the prologue of the text routes (limits, model version, tokenizing)
- :mod:`service.api.routes`      one module per route family; :mod:`service.api.oip` the OIP v2 protocol
- :mod:`service.api.schemas`     request and response models (the OpenAPI document)
- :mod:`service.api.answers`     the answers as plain data, beside the schemas that document them
- :mod:`service.api.deps`        what a route needs (``Services``: settings, registry, inference)
- :mod:`service.api.security`    the API key and the admin token
- :mod:`service.api.errors`      the error vocabulary as HTTP answers, and the exception handlers
- ``static/inspector/``          the page ``GET /inspect`` serves (:mod:`service.api.routes.inspect`)
- ``static/swagger-ui/``         Swagger UI, served with ``GET /docs`` (:mod:`service.api.routes.docs`)
"""
