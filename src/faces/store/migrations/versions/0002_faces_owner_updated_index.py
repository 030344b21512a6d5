"""Index faces by (owner_id, updated_at): the guess refresh reads only the faces changed since its last run.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_faces_owner_updated', 'faces', ['owner_id', 'updated_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_faces_owner_updated', table_name='faces')
