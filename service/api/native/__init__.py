"""The service's own wire format: its routes, their schemas and answers, and the operations routes."""
