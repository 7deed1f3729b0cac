"""``authcore users ...``: create, change and lock accounts from the command line.

A password is read from the terminal without echo (asked twice), or, with
``--password-stdin``, as one line of standard input; never from an argument,
so it stays out of shell history and the process list. It is checked against
the default :class:`~authcore.PasswordPolicy` and never printed or logged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from authcore.cli._database import (
    CommandError,
    engine_for,
    password_from_stdin,
    settings_from_args,
)
from authcore.config import Settings

if TYPE_CHECKING:
    from authcore.users import User

__all__ = ["add_users_parser", "run_users"]


class _UsageError(Exception):
    """Bad input on the command line: one line on stderr, exit status 2."""


def add_users_parser(
    command: Callable[[str, str], argparse.ArgumentParser],
    common: Sequence[argparse.ArgumentParser],
) -> None:
    """Add ``users`` (made by *command*) and its actions, each with the *common* options."""
    users = command("users", "manage user accounts: create, set-password, deactivate, list, ...")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, summary: str, *, password: bool = False) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=summary, description=summary, parents=list(common))
        if name != "list":
            parser.add_argument("username", metavar="USERNAME")
        if password:
            parser.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password as one line of standard input instead of prompting",
            )
        return parser

    create = action("create", "register a new active user", password=True)
    create.add_argument("--email", metavar="E", help="the user's email address (unverified)")
    action("set-password", "set a user's password and revoke their sessions", password=True)
    action("deactivate", "lock a user out and revoke every session of theirs")
    action("activate", "let a deactivated user log in again")
    action("revoke-sessions", "log a user out everywhere")
    listing = action("list", "list users, oldest first")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return password_from_stdin(_UsageError)
    if not sys.stdin.isatty():
        raise _UsageError("no terminal to ask for the password on; use --password-stdin")
    import getpass

    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat it: ") != password:
        raise CommandError("the two passwords differ; nothing changed")
    return password


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse a username or email that could never be registered, before any I/O."""
    from authcore.users._model import check_email, lookup_key

    if args.action != "list" and lookup_key(args.username) is None:
        raise _UsageError(f"not a valid username: {args.username!r}")
    if getattr(args, "email", None) is not None:
        try:
            check_email(args.email)
        except ValueError as exc:
            raise _UsageError(str(exc)) from None


def _user_json(user: User) -> dict[str, Any]:
    def moment(value: Any) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "is_active": user.is_active,
        "is_verified": user.is_verified,
        "created_at": moment(user.created_at),
        "last_login_at": moment(user.last_login_at),
    }


def _table(users: list[User]) -> str:
    if not users:
        return "no users"
    width = max(8, *(len(user.username) for user in users))
    lines = [f"{'USERNAME':<{width}}  {'ACTIVE':<6}  {'VERIFIED':<8}  {'CREATED':<20}  EMAIL"]
    for user in users:
        created = user.created_at.strftime("%Y-%m-%d %H:%M:%SZ")
        active = "yes" if user.is_active else "no"
        verified = "yes" if user.is_verified else "no"
        email = user.email or "-"
        lines.append(
            f"{user.username:<{width}}  {active:<6}  {verified:<8}  {created:<20}  {email}"
        )
    return "\n".join(lines)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


async def _run(args: argparse.Namespace, settings: Settings, password: str | None) -> str:
    from authcore.passwords import PasswordHasher
    from authcore.sessions import SessionStore
    from authcore.users import UserStore

    async with engine_for(settings.database_url) as engine:
        users = UserStore(engine, hasher=PasswordHasher(rounds=settings.bcrypt_rounds))
        if args.action == "list":
            listed = await users.list_users()
            if args.json:
                return json.dumps([_user_json(user) for user in listed], indent=2)
            return _table(listed)
        if args.action == "create":
            assert password is not None
            new = await users.create_user(args.username, password, email=args.email)
            return f"created user {new.username!r} (id {new.id})"
        user = await users.get_user_by_username(args.username)
        if user is None:
            raise CommandError(f"no user named {args.username!r}")
        name = repr(user.username)
        if args.action == "activate":
            await users.set_active(user.id, True)
            return f"activated {name}"
        if args.action == "deactivate":
            await users.set_active(user.id, False)
        elif args.action == "set-password":
            assert password is not None
            await users.set_password(user.id, password)
        revoked = _plural(await SessionStore(engine).revoke_all(user.id), "session")
        return {
            "deactivate": f"deactivated {name}; revoked {revoked}",
            "set-password": f"password changed for {name}; revoked {revoked}",
            "revoke-sessions": f"revoked {revoked} of {name}",
        }[args.action]


def run_users(args: argparse.Namespace) -> int:
    """Run ``authcore users ACTION ...``; return the exit status."""
    try:
        settings = settings_from_args(args)
        _check_arguments(args)
        password = _read_password(args) if args.action in ("create", "set-password") else None
    except _UsageError as exc:
        print(f"authcore: error: {exc}", file=sys.stderr)
        return 2
    output = asyncio.run(_run(args, settings, password))
    if output:
        print(output)
    return 0
