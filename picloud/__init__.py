"""PiCloud: a small self-hosted serverless platform for a Raspberry Pi."""

from picloud.versions import PRODUCT_VERSION as __version__

__all__ = ["__version__"]
