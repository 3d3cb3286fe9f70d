"""Request context, model timing, Prometheus metrics and log formatting: what the engine and the API
report about themselves."""
