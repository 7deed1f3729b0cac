"""The ``authcore`` command line (also ``python -m authcore``).

Exit status: 0 on success, 2 on bad usage or configuration, 1 on any other
failure; errors are one clear line on standard error, and never contain a
token, a password, a hash or a key (``--debug`` shows the traceback instead).

Settings come from ``--database-url`` and the other flags, then the
``AUTHCORE_*`` environment variables, then ``--config-file`` (TOML; by
default the file named by ``AUTHCORE_CONFIG_FILE``), then the defaults; see
:mod:`authcore.config`, which applications read too. SQLAlchemy, passlib and the database
drivers are imported only by the commands that use them, so ``authcore
--help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from authcore.cli._commands import COMMANDS
from authcore.cli._database import CommandError
from authcore.cli._parser import build_parser
from authcore.cli._users import run_users
from authcore.config import ConfigError
from authcore.errors import AuthError

__all__ = ["main"]

_COMMANDS = {**COMMANDS, "users": run_users}  # tests replace entries here


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with *argv* (default: ``sys.argv[1:]``); return the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (already reported)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return _COMMANDS[args.command](args)
    except BrokenPipeError:  # e.g. `authcore demo | head`: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except KeyboardInterrupt:
        print("authcore: interrupted", file=sys.stderr)
        return 130
    except ConfigError as exc:
        if args.debug:
            raise
        print(f"authcore: error: invalid configuration: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except (AuthError, CommandError, OSError) as exc:
        if args.debug:
            raise
        print(f"authcore: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except ImportError as exc:  # a database driver that is not installed
        if args.debug:
            raise
        hint = " (pip install 'authcore[postgres]')" if exc.name == "asyncpg" else ""
        print(f"authcore: error: missing module {exc.name!r}{hint}", file=sys.stderr)
        return 1
    except Exception as exc:
        if args.debug:
            raise
        # The message of an unexpected error is not known to be free of secrets.
        print(
            f"authcore: error: unexpected {type(exc).__name__}; run again with --debug "
            "to see the traceback",
            file=sys.stderr,
        )
        return 1
