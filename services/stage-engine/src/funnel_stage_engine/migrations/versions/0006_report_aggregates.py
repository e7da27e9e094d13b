"""Report aggregates: the funnel report reads per-day summaries, not the whole history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Per registered funnel (``report_funnels``: its stage list, in order):

- ``report_reached``: per stage and UTC day, the people whose first forward move into that
  stage or a later one was that day, and how many of them went on to the next stage;
- ``report_hist``: per stage, day and slot, a histogram of the time from first reaching the
  stage to first reaching the next (count and exact sum in microseconds; slot 1 holds
  [0, 1) s, slot k >= 2 holds [2^((k-2)/4), 2^((k-1)/4)) s, the last one everything from
  2^26 s on);
- ``report_dropped``: for people who stalled in a stage and never progressed past it, one
  per stall day, keyed by the person's previous stall day there ('-infinity' for none), so
  a range counts each person once;
- ``report_current``: per stage, the contacts here now, in progress and stalled;
- ``report_blocked``: per stage the contact was held in and UTC day, the refused skips.

Every figure is a sum over people (a merged anonymous contact counts as the contact its
first merge merged it into) of what that person's rows give. The projection store keeps
the sums exact in the same transaction as the rows (``report_begin`` / ``report_end``):
before storing a batch it takes away the figures of every person and contact the batch
touches, after storing it adds them again, computed from their rows (a handful each, read
by the contact indexes). A replayed record therefore changes nothing, and merges, skips,
backward moves and stalls need no special case. Both take one transaction-level advisory
lock, so concurrent projection transactions and a rebuild never interleave.

Stage order lives in the funnel files, not in the database: the read side registers a
funnel's stage list with ``report_rebuild``, which builds its aggregates from the whole
history in one transaction, and again whenever the list changes; until then nothing is
kept for it. This migration therefore backfills nothing itself: an upgraded deployment's
first report of each funnel builds it (the report is the same as before).
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The advisory lock key for report maintenance (an arbitrary constant: "funnel" in ASCII).
REPORT_LOCK = 0x66756E6E656C
# Histogram slots; mirrored in read/report_histogram.py.
BUCKETS = 106

_TABLES = """
CREATE TABLE report_funnels (
    funnel     text PRIMARY KEY,
    stages     text[] NOT NULL,
    built_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE report_reached (
    funnel     text NOT NULL,
    day        date NOT NULL,
    stage_idx  integer NOT NULL,
    reached    bigint NOT NULL,
    went_on    bigint NOT NULL,
    PRIMARY KEY (funnel, day, stage_idx)
);
CREATE TABLE report_hist (
    funnel     text NOT NULL,
    day        date NOT NULL,
    stage_idx  integer NOT NULL,
    bucket     integer NOT NULL,
    n          bigint NOT NULL,
    us         bigint NOT NULL,
    PRIMARY KEY (funnel, day, stage_idx, bucket)
);
CREATE TABLE report_dropped (
    funnel     text NOT NULL,
    day        date NOT NULL,
    stage      text NOT NULL,
    prev_day   date NOT NULL,
    n          bigint NOT NULL,
    PRIMARY KEY (funnel, day, stage, prev_day)
);
CREATE TABLE report_current (
    funnel      text NOT NULL,
    stage       text NOT NULL,
    in_progress bigint NOT NULL,
    stalled     bigint NOT NULL,
    PRIMARY KEY (funnel, stage)
);
CREATE TABLE report_blocked (
    funnel     text NOT NULL,
    day        date NOT NULL,
    stage      text NOT NULL,
    n          bigint NOT NULL,
    PRIMARY KEY (funnel, day, stage)
);
"""

_FUNCTIONS = f"""
CREATE FUNCTION report_day(t timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (t AT TIME ZONE 'UTC')::date $$;

CREATE FUNCTION report_bucket(d interval) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN extract(epoch FROM d) < 1 THEN 1
                ELSE least(2 + floor(log(2.0, extract(epoch FROM d)) * 4)::integer, {BUCKETS})
           END
$$;

CREATE FUNCTION report_micros(d interval) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (extract(epoch FROM d) * 1000000)::bigint $$;

-- The people a set of contacts counts as (and the contacts themselves): a contact counts
-- as the contact its first merge (by event time) merged it into, else as itself.
CREATE FUNCTION report_persons(contacts text[]) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT array_agg(DISTINCT p) FROM (
        SELECT unnest(contacts) AS p
        UNION ALL
        SELECT (SELECT m.contact_id FROM contact_merges m WHERE m.merged_contact_id = c
                ORDER BY m.event_time, m.id LIMIT 1)
        FROM unnest(contacts) AS c
    ) AS x WHERE p IS NOT NULL
$$;

-- Each person's contacts (p, c): the person itself (unless merged away), and the
-- contacts first merged into it.
CREATE FUNCTION report_members(persons text[]) RETURNS TABLE (p text, c text)
LANGUAGE sql STABLE AS $$
    SELECT x.p, x.p FROM unnest(persons) AS x(p)
    WHERE NOT EXISTS (SELECT 1 FROM contact_merges m WHERE m.merged_contact_id = x.p)
    UNION
    SELECT x.p, m.merged_contact_id FROM unnest(persons) AS x(p)
    JOIN contact_merges m ON m.contact_id = x.p
    WHERE (SELECT m2.contact_id FROM contact_merges m2
           WHERE m2.merged_contact_id = m.merged_contact_id
           ORDER BY m2.event_time, m2.id LIMIT 1) = x.p
$$;

-- Add (sign 1) or take away (-1) the figures of ``persons`` (distinct) and of the
-- ``contacts``' own rows (distinct: here now, refused skips) in funnel f, from their rows.
CREATE FUNCTION report_apply(
    f text, stages text[], persons text[], contacts text[], sign integer
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(stages);
BEGIN
    WITH members AS (SELECT * FROM report_members(persons)), moves AS (
        SELECT mb.p, h.event_time AS t, array_position(stages, h.to_stage) AS ti,
               array_position(stages, h.from_stage) AS fi
        FROM members mb JOIN stage_history h ON h.contact_id = mb.c AND h.funnel = f
    ), forward AS (
        SELECT p, ti, min(t) AS t FROM moves
        WHERE ti IS NOT NULL AND (fi IS NULL OR ti > fi) GROUP BY p, ti
    ), firsts AS (
        SELECT fw.p, k, min(fw.t) FILTER (WHERE fw.ti >= k) AS t
        FROM forward fw CROSS JOIN generate_series(1, n) AS k GROUP BY fw.p, k
    ), figures AS (
        SELECT a.k, report_day(a.t) AS d, b.t - a.t AS gap
        FROM firsts a LEFT JOIN firsts b ON b.p = a.p AND b.k = a.k + 1
        WHERE a.t IS NOT NULL
    ), reached AS (
        INSERT INTO report_reached AS r (funnel, day, stage_idx, reached, went_on)
        SELECT f, d, k, sign * count(*), sign * count(gap) FROM figures GROUP BY d, k
        ON CONFLICT (funnel, day, stage_idx) DO UPDATE SET
            reached = r.reached + excluded.reached, went_on = r.went_on + excluded.went_on
    )
    INSERT INTO report_hist AS r (funnel, day, stage_idx, bucket, n, us)
    SELECT f, d, k, report_bucket(gap), sign * count(*), sign * sum(report_micros(gap))
    FROM figures WHERE gap IS NOT NULL GROUP BY d, k, report_bucket(gap)
    ON CONFLICT (funnel, day, stage_idx, bucket) DO UPDATE SET
        n = r.n + excluded.n, us = r.us + excluded.us;

    INSERT INTO report_dropped AS r (funnel, day, stage, prev_day, n)
    WITH members AS (SELECT * FROM report_members(persons))
    SELECT f, day, stage, prev_day, sign * count(*) FROM (
        SELECT d.day, d.stage,
               coalesce(lag(d.day) OVER (PARTITION BY d.p, d.stage ORDER BY d.day),
                        '-infinity'::date) AS prev_day
        FROM (
            SELECT DISTINCT mb.p, s.stage, report_day(s.event_time) AS day
            FROM members mb
            JOIN stage_stalls s ON s.contact_id = mb.c AND s.funnel = f
        ) AS d
        JOIN contact_stages c ON c.contact_id = d.p AND c.funnel = f
        WHERE c.merged_into IS NULL
          AND array_position(stages, c.furthest_stage) <= array_position(stages, d.stage)
    ) AS x GROUP BY day, stage, prev_day
    ON CONFLICT (funnel, day, stage, prev_day) DO UPDATE SET n = r.n + excluded.n;

    INSERT INTO report_current AS r (funnel, stage, in_progress, stalled)
    SELECT f, current_stage, sign * count(*) FILTER (WHERE stalled_at IS NULL),
           sign * count(*) FILTER (WHERE stalled_at IS NOT NULL)
    FROM contact_stages
    WHERE contact_id = ANY(contacts) AND funnel = f AND merged_into IS NULL
    GROUP BY current_stage
    ON CONFLICT (funnel, stage) DO UPDATE SET
        in_progress = r.in_progress + excluded.in_progress,
        stalled = r.stalled + excluded.stalled;

    INSERT INTO report_blocked AS r (funnel, day, stage, n)
    SELECT f, report_day(event_time), current_stage, sign * count(*) FROM stage_blocks
    WHERE contact_id = ANY(contacts) AND funnel = f AND current_stage IS NOT NULL
    GROUP BY report_day(event_time), current_stage
    ON CONFLICT (funnel, day, stage) DO UPDATE SET n = r.n + excluded.n;
END $$;

-- Before the projection stores a batch touching ``contacts`` in ``funnels``: take the
-- lock, take away the figures of those contacts and of the people they count as, in every
-- registered funnel the batch can change (its own, and those the contacts stand in: a merge
-- marks the merged contact in all of them), and return those people and funnels for
-- ``report_end`` (no funnels: nothing to keep).
CREATE FUNCTION report_begin(
    contacts text[], batch_funnels text[], OUT persons text[], OUT funnels text[]
) LANGUAGE plpgsql AS $$
DECLARE
    reg record;
BEGIN
    PERFORM pg_advisory_xact_lock({REPORT_LOCK});
    SELECT array_agg(r.funnel ORDER BY r.funnel) INTO funnels FROM report_funnels r
    WHERE r.funnel = ANY(batch_funnels)
       OR r.funnel IN (SELECT c.funnel FROM contact_stages c WHERE c.contact_id = ANY(contacts));
    IF funnels IS NULL THEN RETURN; END IF;
    persons := report_persons(contacts);
    FOR reg IN SELECT funnel, stages FROM report_funnels WHERE funnel = ANY(funnels)
               ORDER BY funnel LOOP
        PERFORM report_apply(reg.funnel, reg.stages, persons, contacts, -1);
    END LOOP;
END $$;

-- After the batch is stored: add the same figures again, from the rows as they are now.
CREATE FUNCTION report_end(persons text[], contacts text[], funnels text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    reg record;
BEGIN
    FOR reg IN SELECT funnel, stages FROM report_funnels WHERE funnel = ANY(funnels)
               ORDER BY funnel LOOP
        PERFORM report_apply(reg.funnel, reg.stages, persons, contacts, 1);
    END LOOP;
END $$;

-- Register a funnel's stage list and build its aggregates from the whole history; nothing
-- to do (false) when that list is already registered (unless ``force``).
CREATE FUNCTION report_rebuild(f text, stages text[], force boolean DEFAULT false)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    contacts text[];
BEGIN
    PERFORM pg_advisory_xact_lock({REPORT_LOCK});
    IF NOT force AND (SELECT r.stages FROM report_funnels r WHERE r.funnel = f)
                     IS NOT DISTINCT FROM stages THEN
        RETURN false;
    END IF;
    DELETE FROM report_reached WHERE funnel = f;
    DELETE FROM report_hist WHERE funnel = f;
    DELETE FROM report_dropped WHERE funnel = f;
    DELETE FROM report_current WHERE funnel = f;
    DELETE FROM report_blocked WHERE funnel = f;
    INSERT INTO report_funnels (funnel, stages) VALUES (f, stages)
    ON CONFLICT (funnel) DO UPDATE SET stages = excluded.stages, built_at = now();
    SELECT array_agg(DISTINCT c) INTO contacts FROM (
        SELECT contact_id AS c FROM stage_history WHERE funnel = f
        UNION ALL SELECT contact_id FROM contact_stages WHERE funnel = f
        UNION ALL SELECT contact_id FROM stage_stalls WHERE funnel = f
        UNION ALL SELECT contact_id FROM stage_blocks WHERE funnel = f
    ) AS x;
    IF contacts IS NOT NULL THEN
        PERFORM report_apply(f, stages, report_persons(contacts), contacts, 1);
    END IF;
    RETURN true;
END $$;
"""

_DROP = """
DROP FUNCTION report_rebuild(text, text[], boolean);
DROP FUNCTION report_end(text[], text[], text[]);
DROP FUNCTION report_begin(text[], text[]);
DROP FUNCTION report_apply(text, text[], text[], text[], integer);
DROP FUNCTION report_members(text[]);
DROP FUNCTION report_persons(text[]);
DROP FUNCTION report_micros(interval);
DROP FUNCTION report_bucket(interval);
DROP FUNCTION report_day(timestamptz);
DROP TABLE report_blocked, report_current, report_dropped, report_hist, report_reached,
    report_funnels;
"""


def _statements(script: str, end: str = ";\n") -> list[str]:
    """One statement at a time (asyncpg runs one per prepared statement)."""
    parts = [part.strip() for part in script.split(end)]
    return [part + end.strip() for part in parts if any(_code(line) for line in part.splitlines())]


def _code(line: str) -> bool:
    return bool(line.strip()) and not line.strip().startswith("--")


def upgrade() -> None:
    for statement in _statements(_TABLES):
        op.execute(statement)
    for statement in _statements(_FUNCTIONS, "$$;\n"):  # Each function ends with "$$;".
        op.execute(statement)


def downgrade() -> None:
    for statement in _statements(_DROP):
        op.execute(statement)
