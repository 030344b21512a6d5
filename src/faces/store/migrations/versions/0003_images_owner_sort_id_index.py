"""Index images by (owner_id, sort_at, id): the gallery's keyset pages are ordered by (sort_at, id), and
PostgreSQL's indexes do not end with the row id as SQLite's and InnoDB's do. Without the id, photos that share a
date (uploads without a date taken) made PostgreSQL read and sort every one of them for each page.
It replaces the (owner_id, sort_at) index, which it covers.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_images_owner_sort_id', 'images', ['owner_id', 'sort_at', 'id'], unique=False)
    op.drop_index('ix_images_owner_sort', table_name='images')


def downgrade() -> None:
    op.create_index('ix_images_owner_sort', 'images', ['owner_id', 'sort_at'], unique=False)
    op.drop_index('ix_images_owner_sort_id', table_name='images')
