"""The five version numbers PiCloud carries (see docs/versioning.md)."""

from importlib import metadata

__all__ = ["API_VERSION", "PRODUCT_VERSION", "SDK_VERSION", "WIRE_VERSION"]


def _product_version() -> str:
    try:
        return metadata.version("picloud")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0+unknown"


PRODUCT_VERSION = _product_version()
# The script contract: bumped when the SDK surface pinned by tests/test_sdk_contract.py changes.
SDK_VERSION = "1.0"
# The HTTP API major: the /api/v1 prefix.
API_VERSION = 1
# Frames between roles in separate processes (daemon <-> zygote <-> worker).
WIRE_VERSION = 1
