"""The stage-engine projection: stage history, current stages, blocked skips.

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
    # One row per stage change id: the primary key makes a replay change nothing.
    # ``seq`` is the order the projection stored them in (per contact: topic order).
    op.execute(
        """
        CREATE TABLE stage_history (
            id               text PRIMARY KEY,
            seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            funnel           text NOT NULL,
            funnel_version   text NOT NULL,
            contact_id       text NOT NULL,
            from_stage       text,
            to_stage         text NOT NULL,
            furthest_stage   text NOT NULL,
            rule_id          text NOT NULL,
            cause_message_id text NOT NULL,
            event_time       timestamptz NOT NULL,
            processed_at     timestamptz NOT NULL,
            projected_at     timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX stage_history_contact ON stage_history (contact_id, funnel)")
    op.execute("CREATE INDEX stage_history_funnel ON stage_history (funnel, event_time)")
    # Where each contact stands now, per funnel; written only with a new history row.
    op.execute(
        """
        CREATE TABLE contact_stages (
            contact_id       text NOT NULL,
            funnel           text NOT NULL,
            funnel_version   text NOT NULL,
            current_stage    text NOT NULL,
            furthest_stage   text NOT NULL,
            entered_at       timestamptz NOT NULL,
            stalled_at       timestamptz,
            last_change_id   text NOT NULL,
            traits           jsonb NOT NULL DEFAULT '{}',
            updated_at       timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (contact_id, funnel)
        )
        """
    )
    op.execute("CREATE INDEX contact_stages_funnel ON contact_stages (funnel, current_stage)")
    op.execute(
        """
        CREATE TABLE stage_blocks (
            id               text PRIMARY KEY,
            funnel           text NOT NULL,
            funnel_version   text NOT NULL,
            contact_id       text NOT NULL,
            current_stage    text,
            attempted_stage  text NOT NULL,
            rule_id          text NOT NULL,
            cause_message_id text NOT NULL,
            event_time       timestamptz NOT NULL,
            processed_at     timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX stage_blocks_funnel ON stage_blocks (funnel, event_time)")
    op.execute("CREATE INDEX stage_blocks_contact ON stage_blocks (contact_id)")


def downgrade() -> None:
    op.execute("DROP TABLE stage_blocks")
    op.execute("DROP TABLE contact_stages")
    op.execute("DROP TABLE stage_history")
