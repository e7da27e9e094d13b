"""Why a counted or summed rule fired: the stage change's explanation in the history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for other rules and for records from before the field.
    op.execute("ALTER TABLE stage_history ADD COLUMN explanation jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE stage_history DROP COLUMN explanation")
