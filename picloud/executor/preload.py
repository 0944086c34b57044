"""Which standard-library modules the zygote loads once a script has shown it uses them.

The zygote starts with the modules nearly every script needs (json, re, datetime,
random, ...). These are left out until a script imports one: `hashlib`, `hmac`
and `secrets` bring OpenSSL's libcrypto (~3.4 MiB resident in the zygote) that a
deployment without them would carry for nothing. A worker reports the first time
one of these shows up in its `sys.modules`; the daemon asks the zygote to import
it, and every worker forked after that has it for free. Only names on this list
are ever imported, whatever a frame says: the zygote runs no script's choice of
code.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LEARNABLE", "learnable"]

LEARNABLE = frozenset({"hashlib", "hmac", "secrets"})


def learnable(names: object, known: Iterable[str] = ()) -> list[str]:
    """The names in `names` on the list and not in `known`, sorted (a frame may say anything)."""
    if not isinstance(names, list | tuple):
        return []
    seen = set(known)
    return sorted({n for n in names if isinstance(n, str) and n in LEARNABLE and n not in seen})
