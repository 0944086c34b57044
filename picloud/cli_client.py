"""`picloud deploy|scripts|apps|logs`: a client for the admin API over the LAN."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the client commands. TODO(admin API issue)."""
