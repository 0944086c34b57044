"""The control plane's domain operations: apps, keys, secrets, scripts and their versions."""

__all__: list[str] = []
