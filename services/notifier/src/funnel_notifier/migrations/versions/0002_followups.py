"""Follow-ups, their attempts, each contact's latest stage, and the event outbox.

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
    op.execute(
        """
        CREATE TABLE followup_contact_stages (
            funnel          text NOT NULL,
            contact_id      text NOT NULL,
            stage           text NOT NULL,
            stage_change_id text NOT NULL,
            event_time      timestamptz NOT NULL,
            updated_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (funnel, contact_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE followups (
            id              uuid PRIMARY KEY,
            stage_change_id text NOT NULL,
            rule_id         text NOT NULL,
            trigger         text NOT NULL,
            channel         text NOT NULL,
            funnel          text NOT NULL,
            contact_id      text NOT NULL,
            stage           text,
            unless_moved_on boolean NOT NULL,
            record          jsonb NOT NULL,
            status          text NOT NULL CHECK (status IN
                                ('scheduled', 'sending', 'retrying', 'sent', 'dead', 'cancelled')),
            due_at          timestamptz NOT NULL,
            claimed_until   timestamptz,
            attempts        integer NOT NULL DEFAULT 0,
            total_attempts  integer NOT NULL DEFAULT 0,
            last_error      text,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now(),
            sent_at         timestamptz,
            UNIQUE (stage_change_id, rule_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX followups_due ON followups (due_at)"
        " WHERE status IN ('scheduled', 'retrying', 'sending')"
    )
    op.execute("CREATE INDEX followups_contact ON followups (contact_id)")
    op.execute("CREATE INDEX followups_rule_status ON followups (rule_id, status)")
    op.execute(
        """
        CREATE TABLE followup_attempts (
            followup_id   uuid NOT NULL REFERENCES followups (id),
            number        integer NOT NULL,
            started_at    timestamptz NOT NULL DEFAULT now(),
            finished_at   timestamptz,
            outcome       text NOT NULL CHECK (outcome IN
                              ('in_flight', 'succeeded', 'failed', 'abandoned')),
            status_code   integer,
            error         text,
            retry_after_s double precision,
            PRIMARY KEY (followup_id, number)
        )
        """
    )
    # Outbox: written in the transaction that changes a follow-up, published
    # to funnel.followups.v1 afterwards, so no state change is lost.
    op.execute(
        """
        CREATE TABLE followup_events (
            seq          bigserial PRIMARY KEY,
            id           uuid NOT NULL UNIQUE,
            contact_id   text NOT NULL,
            payload      jsonb NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        )
        """
    )
    op.execute(
        "CREATE INDEX followup_events_unpublished ON followup_events (seq)"
        " WHERE published_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE followup_events")
    op.execute("DROP TABLE followup_attempts")
    op.execute("DROP TABLE followups")
    op.execute("DROP TABLE followup_contact_stages")
