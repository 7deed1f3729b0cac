"""The argument parser of the ``authcore`` command line."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from authcore.cli._users import add_users_parser
from authcore.config import MIN_SECRET_BYTES

__all__ = ["DEMO_DATABASE", "MIN_SECRET_BYTES", "build_parser"]

DEMO_DATABASE = "authcore-demo.db"


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line on stderr and exit status 2.

    A usage error never repeats a value the user typed where none belongs: that
    is where a password typed as an argument would end up (``authcore users
    create alice hunter2``), and stderr goes to terminals' scrollback and CI logs.
    """

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            self.error(_unrecognized(extra))
        return parsed

    def error(self, message: str) -> NoReturn:
        message = _EXPLICIT.sub(r"\1(not shown)", message)
        self.exit(2, f"authcore: error: {message} (see `{self.prog} --help`)\n")


# "argument --password-stdin: ignored explicit argument 'hunter2'", from --password-stdin=...
_EXPLICIT = re.compile(r"(ignored explicit argument )'.*'", re.DOTALL)


def _unrecognized(extra: Sequence[str]) -> str:
    """Name unknown options (up to any ``=``); count the values, never show them."""
    options = [word.partition("=")[0] + ("=(not shown)" if "=" in word else "")
               for word in extra if word.startswith("-") and word != "-"]  # fmt: skip
    values = len(extra) - len(options)
    parts = options + ([f"{values} value{'s' if values > 1 else ''} not shown"] if values else [])
    hint = " (a password is never an argument: it is read from a prompt or --password-stdin)"
    return "unrecognized arguments: " + ", ".join(parts) + (hint if values else "")


class _Version(argparse.Action):
    """``--version``, reading the version only when asked (keeps start-up light)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        from authcore import __version__

        print(f"authcore {__version__}")
        parser.exit(0)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _secret_bytes(text: str) -> int:
    value = _count(text)
    if not MIN_SECRET_BYTES <= value <= 1024:
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_SECRET_BYTES} and 1024, got {value}"
        )
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 seconds, got {text}")
    return value


def _common_options(*, in_subcommand: bool) -> _Parser:
    """The options every command accepts, before or after the command name."""
    # In a subcommand they default to SUPPRESS, so they never reset a value
    # that was given before the command name.
    unset: Any = argparse.SUPPRESS if in_subcommand else None
    off: Any = argparse.SUPPRESS if in_subcommand else False
    parser = _Parser(add_help=False)
    group = parser.add_argument_group("configuration")
    group.add_argument(
        "--config-file",
        metavar="PATH",
        default=unset,
        help="TOML file with an [authcore] table (default: $AUTHCORE_CONFIG_FILE, if set)",
    )
    group.add_argument(
        "--database-url",
        metavar="URL",
        default=unset,
        help="async SQLAlchemy URL (default: sqlite+aiosqlite:///authcore.db)",
    )
    group.add_argument(
        "--allow-test-rounds",
        action="store_true",
        default=off,
        help="accept bcrypt_rounds 4 to 9 (fast, weak hashes: test configurations only)",
    )
    group.add_argument("--debug", action="store_true", default=off, help="show tracebacks")
    return parser


def _add_timeout(parser: argparse.ArgumentParser, meaning: str) -> None:
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help=f"{meaning} (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="authcore",
        description="Sessions, passwords and tokens for Python web apps.",
        epilog="Exit status: 0 ok, 2 bad usage or configuration, 1 other failure. "
        "Run `authcore COMMAND --help` for a command's options.",
        parents=[_common_options(in_subcommand=False)],
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common_options(in_subcommand=True)]

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=summary, parents=common)

    demo = command("demo", "walk through every session feature on ./authcore-demo.db")
    demo.add_argument(
        "--database", default=DEMO_DATABASE, help="SQLite file to use (default: %(default)s)"
    )
    command("init-db", "create authcore's tables (idempotent)")
    purge = command("purge", "delete expired and revoked sessions, in batches")
    purge.add_argument("--dry-run", action="store_true", help="count them, delete nothing")
    purge.add_argument(
        "--batch-size",
        type=_count,
        default=1000,
        metavar="N",
        help="rows per transaction (default: %(default)s)",
    )
    stats = command("stats", "count sessions by state, and users")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    health = command("health", "check the database: connection, schema, round-trip latency")
    _add_timeout(health, "give up after this long")
    hasher = command("hash-password", "hash a password read from the terminal or stdin")
    hasher.add_argument("--rounds", type=int, help="bcrypt cost (default: bcrypt_rounds)")
    hasher.add_argument(
        "--scheme",
        choices=("bcrypt_sha256", "bcrypt"),
        default="bcrypt_sha256",
        help="hash format (default: %(default)s)",
    )
    secret = command("gen-secret", "print a new random secret_key")
    secret.add_argument(
        "--bytes",
        type=_secret_bytes,
        default=32,
        metavar="N",
        help=f"random bytes, at least {MIN_SECRET_BYTES} (default: %(default)s)",
    )
    validate = command("validate", "check a configuration and report every problem")
    validate.add_argument("--check-db", action="store_true", help="also connect to the database")
    _add_timeout(validate, "database check time limit")
    bench = command("bench", "measure tokens, sessions and hashing (temporary SQLite by default)")
    bench.add_argument("--sessions", type=_count, default=1000, metavar="N", help="default: 1000")
    bench.add_argument("--tokens", type=_count, default=20_000, metavar="N", help="default: 20000")
    bench.add_argument("--hashes", type=_count, default=5, metavar="N", help="default: 5")
    bench.add_argument(
        "--concurrency", type=_count, default=1, metavar="N", help="session operations at once"
    )
    bench.add_argument("--rounds", type=int, help="bcrypt cost (default: bcrypt_rounds)")
    bench.add_argument(
        "--compare",
        action="store_true",
        help="also measure the floor (raw Core insert/select, a token recipe) and the ratios",
    )
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_users_parser(command, common)
    return parser
