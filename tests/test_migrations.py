"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from app.store.models import Base


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migration_creates_every_table_with_its_unique_keys(engine: Engine) -> None:
    inspector = inspect(engine)
    assert {"datasets", "jobs", "trials", "trial_epochs", "alembic_version"} <= set(
        inspector.get_table_names()
    )
    uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("trials")}
    assert ("job_id", "trial_id") in uniques
    uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("trial_epochs")}
    assert ("trial_pk", "epoch") in uniques
