"""Running totals of summed rules: the latest TotalChanged per contact, funnel and rule.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per (contact, funnel, rule), replaced by a record with a higher sequence
    # only: a replayed or late older record changes nothing.
    op.execute(
        """
        CREATE TABLE contact_totals (
            contact_id text NOT NULL,
            funnel text NOT NULL,
            rule_id text NOT NULL,
            funnel_version text NOT NULL,
            to_stage text NOT NULL,
            property text NOT NULL,
            total double precision NOT NULL,
            at_least double precision NOT NULL,
            within_seconds double precision,
            amounts integer NOT NULL,
            ignored integer NOT NULL,
            sequence bigint NOT NULL,
            last_id text NOT NULL,
            cause_message_id text NOT NULL,
            cause_kind text NOT NULL,
            event_time timestamptz NOT NULL,
            processed_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (contact_id, funnel, rule_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE contact_totals")
