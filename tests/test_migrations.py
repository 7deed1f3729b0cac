"""An application's own Alembic environment, with ``authcore.metadata`` among its targets.

A throwaway async Alembic environment, using the ``env.py`` of
``docs/migrations.md`` verbatim and an app table of its own (with a foreign key
to ``authcore_users``), autogenerates the first revision against an empty
database and applies it with ``alembic upgrade head``. The resulting schema
must be exactly what ``create_schema`` (plus the app's ``create_all``) builds,
compared through SQLAlchemy's inspector, and ``alembic check`` must find
nothing left to migrate. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import render_python_code
from alembic.config import Config
from alembic.operations import ops
from sqlalchemy import ForeignKey, MetaData, String, Text, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from authcore import create_engine, create_schema, dispose_engine, metadata
from authcore.db import alembic_render_item

from .pgserver import PostgresServer

USERS = metadata.tables["authcore_users"]  # as docs/migrations.md refers to it
DOCS = Path(__file__).resolve().parent.parent / "docs" / "migrations.md"


def documented_env_py() -> str:
    """The ``env.py`` that docs/migrations.md shows, verbatim: the test keeps the docs honest."""
    page = DOCS.read_text()
    section = page.split("## A complete async `env.py`", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_documented_env_py_uses_the_shipped_hook() -> None:
    env_py = documented_env_py()
    assert "from authcore.db import alembic_render_item" in env_py
    assert "render_item=alembic_render_item" in env_py
    assert "def render_item" not in env_py


@pytest.mark.parametrize("prefix", ["sa.", "sqla."])
def test_render_item_hook_writes_authcore_timestamps_as_plain_sqlalchemy(prefix: str) -> None:
    table = ops.UpgradeOps([ops.CreateTableOp.from_table(metadata.tables["authcore_sessions"])])
    # Alembic alone refers to authcore's private column type, with no import.
    assert "authcore.db._schema.UTCDateTime(" in render_python_code(table)

    source = render_python_code(
        table, sqlalchemy_module_prefix=prefix, render_item=alembic_render_item
    )
    plain = f'{prefix}DateTime(timezone=True).with_variant({prefix}BigInteger(), "sqlite")'
    assert f"{prefix}Column('expires_at', {plain}, nullable=False)" in source
    assert source.count(plain) == 4  # created_at, last_seen_at, expires_at, revoked_at
    assert "authcore" not in source.replace("authcore_sessions", "")
    # Every other column keeps Alembic's own rendering.
    assert f"{prefix}Column('token_hash', {prefix}String(length=64), nullable=False)" in source


def app_models() -> ModuleType:
    """``myapp.models`` as the documented env.py imports it: an app table of its own,
    with a foreign key to authcore's users."""

    class Base(DeclarativeBase):
        pass

    class Note(Base):
        __tablename__ = "app_notes"
        id: Mapped[int] = mapped_column(primary_key=True)
        user_id: Mapped[str] = mapped_column(
            String(32), ForeignKey(USERS.c.id, ondelete="CASCADE"), index=True
        )
        body: Mapped[str] = mapped_column(Text())

    module = ModuleType("myapp.models")
    module.Base = Base  # type: ignore[attr-defined]
    return module


SCRIPT_MAKO = textwrap.dedent(
    '''
    """${message}

    Revision ID: ${up_revision}
    Revises: ${down_revision | comma,n}
    Create Date: ${create_date}
    """
    from alembic import op
    import sqlalchemy as sa
    ${imports if imports else ""}

    revision = ${repr(up_revision)}
    down_revision = ${repr(down_revision)}
    branch_labels = ${repr(branch_labels)}
    depends_on = ${repr(depends_on)}


    def upgrade() -> None:
        ${upgrades if upgrades else "pass"}


    def downgrade() -> None:
        ${downgrades if downgrades else "pass"}
    '''
)


def alembic_config(folder: Path, url: str) -> Config:
    """A complete Alembic environment in *folder*: env.py, the template, versions/."""
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(documented_env_py())
    (folder / "script.py.mako").write_text(SCRIPT_MAKO)
    config = Config()
    config.set_main_option("script_location", str(folder))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def describe(conn: Connection) -> dict[str, Any]:
    """Everything SQLAlchemy's inspector reports about authcore's tables, comparable."""
    inspector = inspect(conn)
    tables = sorted(name for name in inspector.get_table_names() if name != "alembic_version")
    schema: dict[str, Any] = {"tables": tables}
    for table in tables:
        schema[table] = {
            "columns": [
                (c["name"], repr(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (f["name"], tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            ),
            "checks": sorted(c["name"] or "" for c in inspector.get_check_constraints(table)),
        }
    return schema


async def schema_of(url: str, *, create: MetaData | None = None) -> dict[str, Any]:
    """The schema at *url*; first ``create_schema`` and *create*'s tables, when given."""
    engine = create_engine(url)
    try:
        if create is not None:
            await create_schema(engine)
            async with engine.begin() as conn:
                await conn.run_sync(create.create_all)
        async with engine.connect() as conn:
            return await conn.run_sync(describe)
    finally:
        assert await dispose_engine(engine)


def two_databases_and_app(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str, ModuleType]:
    """URLs of two empty databases (to migrate, and to create the schema in) on
    *backend*, and the app's models installed as ``myapp.models`` for env.py."""
    if backend == "sqlite":
        migrated_url = f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}"
        created_url = f"sqlite+aiosqlite:///{tmp_path / 'created.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        suffix = uuid.uuid4().hex[:12]
        migrated_url = server.create_database(f"migrated_{suffix}")
        created_url = server.create_database(f"created_{suffix}")
    models = app_models()
    monkeypatch.setitem(sys.modules, "myapp", ModuleType("myapp"))
    monkeypatch.setitem(sys.modules, "myapp.models", models)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return migrated_url, created_url, models


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_autogenerated_migration_matches_create_schema(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrated_url, created_url, models = two_databases_and_app(
        backend, tmp_path, request, monkeypatch
    )
    config = alembic_config(tmp_path / "migrations", migrated_url)

    assert asyncio.run(schema_of(migrated_url)) == {"tables": []}
    script = command.revision(config, message="authcore tables", autogenerate=True)
    assert script is not None
    assert not isinstance(script, list)
    source = Path(script.path).read_text()
    assert "authcore." not in source  # plain SQLAlchemy types: nothing of authcore's code
    for table in [*metadata.tables, "app_notes"]:
        assert f"op.create_table('{table}'" in source, table
    command.upgrade(config, "head")
    command.check(config)  # raises when autogenerate would still find differences

    migrated = asyncio.run(schema_of(migrated_url))
    created = asyncio.run(schema_of(created_url, create=models.Base.metadata))
    assert migrated["tables"] == sorted([*metadata.tables, "app_notes"])
    app_fks = [fk[1:] for fk in migrated["app_notes"]["foreign_keys"]]
    assert app_fks == [(("user_id",), "authcore_users")]
    assert migrated == created

    command.downgrade(config, "base")
    assert asyncio.run(schema_of(migrated_url)) == {"tables": []}
