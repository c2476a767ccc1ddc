"""HTTP routes, one module per resource; each handler is a thin wrapper over a service."""
