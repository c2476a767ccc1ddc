"""The gateway, the engine supervisor, the adapter registry and the `flywheel` CLI."""
