"""The ``authcore`` command line (also ``python -m authcore``).

Exit status: 0 on success, 2 on bad usage or configuration, 1 on any other
failure; errors are one clear line on standard error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from authcore import __version__
from authcore.errors import AuthError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authcore", description="Sessions, passwords and tokens for Python web apps."
    )
    parser.add_argument("--version", action="version", version=f"authcore {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="walk through every session feature on ./authcore-demo.db"
    )
    demo.add_argument(
        "--database", default="authcore-demo.db", help="SQLite file to use (default: %(default)s)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from authcore._demo import run_demo

            run_demo(args.database)
    except BrokenPipeError:  # e.g. `authcore demo | head`: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except KeyboardInterrupt:
        print("authcore: interrupted", file=sys.stderr)
        return 130
    except (AuthError, OSError) as exc:
        if args.debug:
            raise
        print(f"authcore: error: {exc}", file=sys.stderr)
        return 1
    return 0
