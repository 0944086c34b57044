"""`picloud backup|restore`: archives of the state directory."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the backup and restore commands. TODO(operations issue)."""
