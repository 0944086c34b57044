"""The five version numbers PiCloud carries (see docs/versioning.md)."""

from functools import cache

__all__ = ["API_VERSION", "PRODUCT_VERSION", "SDK_VERSION", "WIRE_VERSION", "product_version"]

# Read from the package metadata on first use (module __getattr__ below): importlib.metadata
# and what it imports (email, zipfile, csv...) cost the idle daemon ~0.8 MiB resident.
PRODUCT_VERSION: str


@cache
def product_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("picloud")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0+unknown"


def __getattr__(name: str) -> str:
    if name == "PRODUCT_VERSION":
        return product_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The script contract: bumped when the SDK surface pinned by tests/test_sdk_contract.py changes.
SDK_VERSION = "1.0"
# The HTTP API major: the /api/v1 prefix.
API_VERSION = 1
# Frames between roles in separate processes (daemon <-> zygote <-> worker).
WIRE_VERSION = 1
