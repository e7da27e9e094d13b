"""The contact pages: what caused each change, and who is in a stage now, newest first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The causing event's type and name (NULL for merges, stalls and older records).
    for table in ("stage_history", "stage_blocks"):
        op.execute(f"ALTER TABLE {table} ADD COLUMN cause_event_type text")
        op.execute(f"ALTER TABLE {table} ADD COLUMN cause_event_name text")
    # The stage pages: the contacts here now (not merged away), newest stay first, read
    # a page at a time by keyset (entered_at, contact_id).
    op.execute(
        """
        CREATE INDEX contact_stages_here_now
        ON contact_stages (funnel, current_stage, entered_at DESC, contact_id DESC)
        WHERE merged_into IS NULL
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX contact_stages_here_now")
    for table in ("stage_blocks", "stage_history"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN cause_event_name")
        op.execute(f"ALTER TABLE {table} DROP COLUMN cause_event_type")
