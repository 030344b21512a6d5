"""The quick schema check at start (no Alembic import when the database is current) agrees with Alembic."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from faces.store.db import alembic_config, current_revision, head_revision


def test_the_quick_head_is_alembics_head_and_a_migrated_store_is_at_it(store):
    script = ScriptDirectory.from_config(alembic_config(store.engine))
    assert head_revision() == script.get_current_head()
    assert current_revision(store.engine) == head_revision()
