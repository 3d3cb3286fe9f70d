"""The HTTP edge: the FastAPI app, middleware, the plain-ASGI hot path, routes, request and answer
schemas, dependencies, security and the mapping of the error vocabulary to HTTP responses. Reaches models
only through :mod:`service.engine`."""
