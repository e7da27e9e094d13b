"""Stalls and contact merges in the projection; what caused each stage change.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE stage_history ADD COLUMN cause_kind text NOT NULL DEFAULT 'event'")
    # Set on a contact merged away: it is no longer counted where it stands.
    op.execute("ALTER TABLE contact_stages ADD COLUMN merged_into text")
    op.execute(
        """
        CREATE TABLE stage_stalls (
            id                    text PRIMARY KEY,
            funnel                text NOT NULL,
            funnel_version        text NOT NULL,
            contact_id            text NOT NULL,
            stage                 text NOT NULL,
            furthest_stage        text NOT NULL,
            entered_at            timestamptz NOT NULL,
            entry_id              text NOT NULL,
            stalled_after_seconds double precision NOT NULL,
            move_to               text,
            event_time            timestamptz NOT NULL,
            processed_at          timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX stage_stalls_contact ON stage_stalls (contact_id, funnel)")
    op.execute(
        """
        CREATE TABLE contact_merges (
            id                    text PRIMARY KEY,
            merge_id              text NOT NULL,
            funnel                text NOT NULL,
            funnel_version        text NOT NULL,
            contact_id            text NOT NULL,
            merged_contact_id     text NOT NULL,
            current_stage         text NOT NULL,
            furthest_stage        text NOT NULL,
            merged_current_stage  text NOT NULL,
            merged_furthest_stage text NOT NULL,
            cause_message_id      text NOT NULL,
            event_time            timestamptz NOT NULL,
            processed_at          timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX contact_merges_contact ON contact_merges (contact_id)")
    op.execute("CREATE INDEX contact_merges_merged ON contact_merges (merged_contact_id)")


def downgrade() -> None:
    op.execute("DROP TABLE contact_merges")
    op.execute("DROP TABLE stage_stalls")
    op.execute("ALTER TABLE contact_stages DROP COLUMN merged_into")
    op.execute("ALTER TABLE stage_history DROP COLUMN cause_kind")
