"""revoked_sessions: the login sessions ended by logging out, refused until they would have expired anyway (a copy
of the cookie no longer logs anyone in).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'revoked_sessions',
        sa.Column('sid', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sid'),
    )
    op.create_index('ix_revoked_sessions_expires_at', 'revoked_sessions', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_revoked_sessions_expires_at', table_name='revoked_sessions')
    op.drop_table('revoked_sessions')
