"""PiCloud: a small self-hosted serverless platform for a Raspberry Pi."""

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    # Looked up on first use: the version comes from the package metadata (picloud.versions).
    if name == "__version__":
        from picloud.versions import product_version

        return product_version()
    raise AttributeError(f"module 'picloud' has no attribute {name!r}")
