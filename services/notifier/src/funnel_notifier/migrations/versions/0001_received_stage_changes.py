"""Stage changes the notifier has received, one row per stage change id.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE received_stage_changes (
            id               text PRIMARY KEY,
            funnel           text NOT NULL,
            contact_id       text NOT NULL,
            from_stage       text,
            to_stage         text NOT NULL,
            rule_id          text NOT NULL,
            cause_message_id text NOT NULL,
            event_time       timestamptz NOT NULL,
            payload          jsonb NOT NULL,
            received_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX received_stage_changes_contact ON received_stage_changes (contact_id)")


def downgrade() -> None:
    op.execute("DROP TABLE received_stage_changes")
