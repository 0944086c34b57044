"""The `picloud` command: the daemon (`serve`), the token, and a client for the LAN."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from picloud.config import ConfigError, load_settings

if TYPE_CHECKING:
    import argparse

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    func: Callable[[Any], int]
    if args == ["serve"]:
        # The daemon's own start skips argparse and the client commands it would import
        # (~1 MiB the daemon would keep resident for nothing); `serve --help` still works.
        func, parsed = _serve, None
    else:
        parser = _parser()
        parsed = parser.parse_args(args)
        found: Callable[[Any], int] | None = getattr(parsed, "func", None)
        if found is None:
            parser.print_help()
            return 2
        func = found
    try:
        return int(func(parsed))
    except ConfigError as exc:
        print(f"picloud: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    import argparse

    from picloud import cli_client
    from picloud.ops import cli as ops_cli

    parser = argparse.ArgumentParser(prog="picloud", description=__doc__)
    sub = parser.add_subparsers(metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the daemon")
    serve.set_defaults(func=_serve)
    token = sub.add_parser("token", help="show (or --rotate) the admin token")
    token.add_argument("--rotate", action="store_true", help="replace it with a new one")
    token.set_defaults(func=_token)
    cli_client.register(sub)
    ops_cli.register(sub)
    return parser


def _serve(args: argparse.Namespace | None) -> int:
    from picloud import footprint

    footprint.prepare()  # before anything imports aiohttp
    from picloud.daemon import configure_logging, serve

    settings = load_settings()
    configure_logging(settings.log_level)
    return serve(settings)


def _token(args: argparse.Namespace) -> int:
    from picloud.auth import read_or_create_token, rotate_token

    settings = load_settings()
    if settings.admin_token and not args.rotate:
        print(settings.admin_token)
        return 0
    if args.rotate:
        if settings.admin_token:
            print(
                "picloud: the token is set by PICLOUD_ADMIN_TOKEN; change it there", file=sys.stderr
            )
            return 2
        print(rotate_token(settings.state_dir))
        return 0
    token, _ = read_or_create_token(settings.state_dir)
    print(token)
    return 0
