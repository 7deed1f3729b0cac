"""fastapi-users 15 with its DatabaseStrategy: the comparison app for bench_fastapi.py.

Runs in a virtualenv of its own (fastapi-users needs SQLAlchemy < 2.1)::

    python3 -m venv /tmp/fu
    /tmp/fu/bin/pip install "fastapi-users[sqlalchemy]==15.*" "sqlalchemy<2.1" \
        aiosqlite asyncpg uvicorn

``FU_DATABASE_URL`` names the database; on start-up the app creates its
tables, one user and one access token (``FU_TOKEN``), and serves ``/notes``
behind ``current_user(active=True)`` with the bearer transport.
"""

# fastapi-users' own style: dependencies as defaults.
# ruff: noqa: B008

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin
from fastapi_users.authentication import AuthenticationBackend, BearerTransport
from fastapi_users.authentication.strategy.db import DatabaseStrategy
from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from fastapi_users_db_sqlalchemy.access_token import (
    SQLAlchemyAccessTokenDatabase,
    SQLAlchemyBaseAccessTokenTableUUID,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class UserTable(SQLAlchemyBaseUserTableUUID, Base):
    pass


class AccessToken(SQLAlchemyBaseAccessTokenTableUUID, Base):
    pass


engine = create_async_engine(os.environ["FU_DATABASE_URL"])
sessionmaker = async_sessionmaker(engine, expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


async def get_user_db(session: AsyncSession = Depends(get_session)) -> Any:
    yield SQLAlchemyUserDatabase(session, UserTable)


async def get_token_db(session: AsyncSession = Depends(get_session)) -> Any:
    yield SQLAlchemyAccessTokenDatabase(session, AccessToken)


class UserManager(UUIDIDMixin, BaseUserManager[UserTable, uuid.UUID]):
    reset_password_token_secret = "bench-secret"
    verification_token_secret = "bench-secret"


async def get_user_manager(user_db: Any = Depends(get_user_db)) -> Any:
    yield UserManager(user_db)


def get_strategy(token_db: Any = Depends(get_token_db)) -> DatabaseStrategy[Any, Any, Any]:
    return DatabaseStrategy(token_db, lifetime_seconds=3600)


backend = AuthenticationBackend(
    name="db", transport=BearerTransport(tokenUrl="auth/login"), get_strategy=get_strategy
)
fastapi_users = FastAPIUsers[UserTable, uuid.UUID](get_user_manager, [backend])
current_user = fastapi_users.current_user(active=True)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with sessionmaker() as session:
        user = UserTable(email="bench@example.com", hashed_password="-", is_active=True)
        session.add(user)
        await session.flush()
        session.add(AccessToken(token=os.environ["FU_TOKEN"], user_id=user.id))
        await session.commit()
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "ok"}


@app.get("/notes")
async def notes(user: UserTable = Depends(current_user)) -> dict[str, Any]:
    return {"owner": user.email, "notes": [f"welcome back, {user.email}"]}
