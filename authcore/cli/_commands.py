"""The ``authcore`` subcommands: each takes the parsed arguments, returns the exit status."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TextIO

from authcore.cli._database import (
    CommandError,
    check_database,
    engine_for,
    password_from_stdin,
    schema_problems,
    settings_from_args,
    store_for,
)
from authcore.config import (
    ConfigError,
    Settings,
    app_keywords,
    check_settings,
    safe_url,
)
from authcore.config import format_duration as _format_duration

__all__ = ["COMMANDS"]


class _ProgressBar:
    """A one-line progress bar redrawn in place on a terminal."""

    def __init__(self, stream: TextIO, total: int, width: int = 30) -> None:
        self.stream, self.total, self.width = stream, total, width

    def update(self, done: int) -> None:
        total = max(self.total, done, 1)
        filled = self.width * done // total
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\rpurging [{bar}] {done / total:4.0%}  {done:,}/{total:,}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


# -- commands ------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from authcore.cli._demo import run_demo

    run_demo(args.database)
    return 0


def _cmd_init_db(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    async def run() -> tuple[list[str], list[str]]:
        from authcore.db import create_schema

        async with engine_for(settings.database_url, create=True) as engine:
            before = await schema_problems(engine)
            await create_schema(engine)
            return before, await schema_problems(engine)

    before, after = asyncio.run(run())
    where = safe_url(settings.database_url)
    if after:  # create_schema adds tables, never columns to an existing table
        raise CommandError(
            f"{where}: existing tables lack {', '.join(after)}; migrate them "
            "(authcore does not alter existing tables)"
        )
    created = [problem.removeprefix("table ") for problem in before]
    if created:
        print(f"created {', '.join(created)} in {where}")
    else:
        print(f"schema already present in {where}; nothing to do")
    return 0


def _cmd_purge(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    where = safe_url(settings.database_url)

    async def run() -> int:
        async with engine_for(settings.database_url) as engine:
            store = store_for(engine, settings)
            total = await store.count_purgeable()
            if args.dry_run:
                return total
            bar = _ProgressBar(sys.stderr, total) if total and sys.stderr.isatty() else None
            shown = 0

            def progress(deleted: int) -> None:
                nonlocal shown
                if bar is not None and deleted > shown:
                    bar.update(deleted)
                    shown = deleted

            try:
                return await store.purge_expired(batch_size=args.batch_size, progress=progress)
            finally:
                if bar is not None:
                    bar.close()

    start = time.perf_counter()
    count = asyncio.run(run())
    if args.dry_run:
        print(f"would purge {_plural(count, 'expired or revoked session')} from {where}")
    else:
        elapsed = time.perf_counter() - start
        purged = _plural(count, "expired or revoked session")
        print(f"purged {purged} from {where} in {elapsed:.2f} s")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    async def run() -> dict[str, int]:
        from sqlalchemy import func, select

        from authcore.db._errors import storage_errors
        from authcore.users._table import users_table

        async with engine_for(settings.database_url) as engine:
            store = store_for(engine, settings)
            stats = await store.stats()
            counts = {
                "total": stats.total,
                "active": stats.active,
                "expired": stats.expired,
                "revoked": stats.revoked,
                "purgeable": await store.count_purgeable(),
            }
            with storage_errors("counting users"):
                async with engine.connect() as conn:
                    query = select(func.count()).select_from(users_table)
                    counts["users"] = int((await conn.execute(query)).scalar_one())
            return counts

    counts = asyncio.run(run())
    report = {
        "database": safe_url(settings.database_url),
        "idle_timeout": _format_duration(settings.idle_timeout),
        "sessions": counts["total"],
        "active_sessions": counts["active"],
        "expired_sessions": counts["expired"],
        "revoked_sessions": counts["revoked"],
        "awaiting_purge": counts["purgeable"],
        "users": counts["users"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    rows = [
        ("sessions stored", counts["total"]),
        ("  active", counts["active"]),
        ("  expired", counts["expired"]),
        ("  revoked", counts["revoked"]),
        ("awaiting purge", counts["purgeable"]),
        ("users", counts["users"]),
    ]
    print(f"{report['database']} (idle timeout {report['idle_timeout']})")
    for label, value in rows:
        print(f"{label:<18}{value:>10,}")
    return 0


def _cmd_health(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    summary = asyncio.run(check_database(settings.database_url, args.timeout, require_schema=True))
    print(f"ok: {safe_url(settings.database_url)}: {summary}")
    return 0


def _read_password() -> str:
    """One password: prompted twice without echo on a terminal, else one line of stdin."""
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise CommandError("the two passwords differ")
        return password
    return password_from_stdin(CommandError)


def _cmd_hash_password(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, rounds=args.rounds, database_url=False)
    from authcore.passwords import PasswordHasher

    hasher = PasswordHasher(rounds=settings.bcrypt_rounds, scheme=args.scheme)
    password = _read_password()
    print(hasher.hash_sync(password))
    return 0


def _cmd_gen_secret(args: argparse.Namespace) -> int:
    import secrets

    print(secrets.token_urlsafe(args.bytes))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    # The same checks and the same translation as AuthCore.from_settings: what
    # this prints is what the application runs with.
    report = check_settings(
        args.config_file,
        overrides={"database_url": args.database_url},
        require_secret=True,
        allow_test_rounds=args.allow_test_rounds,
    )
    problems = list(report.problems)
    database = None
    url_is_bad = any(p.startswith(("database_url", "AUTHCORE_DATABASE_URL")) for p in problems)
    if args.check_db and not url_is_bad:
        url = report.values.get("database_url", Settings.database_url)
        try:
            database = asyncio.run(check_database(url, args.timeout, require_schema=False))
        except CommandError as exc:
            problems.append(f"database_url: cannot use the database: {exc}")
        except ConfigError as exc:
            problems.extend(exc.problems)
    source = report.config_file or "environment and defaults"
    if problems:
        print(f"{source}: {_plural(len(problems), 'problem')}")
        for problem in problems:
            print(f"  - {problem}")
        print(
            f"authcore: error: invalid configuration ({_plural(len(problems), 'problem')} "
            "listed above)",
            file=sys.stderr,
        )
        return 2
    print(f"{source}: configuration ok")
    for key, value in app_keywords(report.settings()).items():
        origin = report.sources[key]
        shown = _shown_setting(key, value)
        print(f"  {key:<14} {shown:<40} ({'default' if origin == 'default' else 'from ' + origin})")
    if database is not None:
        print(f"  {'database':<14} {database}")
    return 0


def _shown_setting(key: str, value: object) -> str:
    """A setting as validate prints it: no secret, no database password."""
    if key == "database_url" and isinstance(value, str):
        return safe_url(value)
    if key == "secret_key" and isinstance(value, str):
        return f"set ({len(value.encode('utf-8'))} bytes)"
    if value is None or isinstance(value, timedelta):
        return _format_duration(value)
    return str(value)


def _cmd_bench(args: argparse.Namespace) -> int:
    # Only an explicit --database-url is benchmarked: never a database that
    # the environment or a configuration file happens to point at.
    settings = settings_from_args(args, rounds=args.rounds, database_url=False)
    from authcore.cli._bench import run_bench

    report = asyncio.run(
        run_bench(
            args.database_url,
            sessions=args.sessions,
            tokens=args.tokens,
            hashes=args.hashes,
            rounds=settings.bcrypt_rounds,
            concurrency=args.concurrency,
            compare=args.compare,
        )
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.table())
    return 0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _cmd_demo,
    "init-db": _cmd_init_db,
    "purge": _cmd_purge,
    "stats": _cmd_stats,
    "health": _cmd_health,
    "hash-password": _cmd_hash_password,
    "gen-secret": _cmd_gen_secret,
    "validate": _cmd_validate,
    "bench": _cmd_bench,
}
