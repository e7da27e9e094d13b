"""Report aggregates: the funnel report reads per-day summaries, not the whole history.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

Triggers on the projection's tables keep, in the same transaction as the rows they
summarise, per funnel:

- ``report_people``: per person (a merged anonymous contact counts as the contact it was
  merged into) the first time it moved forward into each stage or a later one;
- ``report_reached``: per stage and UTC day of that first time, how many people and how
  many of them went on to the next stage; ``report_hist`` a fixed-bucket histogram of the
  time it took (count and exact sum, in microseconds, per bucket present: 4 buckets per
  doubling of seconds);
- ``report_person_stalls`` / ``report_dropped``: the UTC days each person stalled in a
  stage, and, for the people who never progressed past it, a count per (stage, day, the
  person's previous stall day there), so a range counts each person once;
- ``report_current``: per stage, the contacts here now, in progress and stalled;
- ``report_blocked``: per stage the contact was held in and UTC day, the refused skips.

Stage order lives in the funnel files, not in the database: the read side registers a
funnel's stage list in ``report_funnels`` (``report_rebuild``), which builds that funnel's
aggregates from the whole history, in one transaction, and again whenever the list
changes. Until then the triggers leave the funnel alone. This migration therefore backfills
nothing itself; an upgraded deployment's first report of each funnel rebuilds it (and shows
the same report as before). Every trigger and the rebuild take one transaction-level
advisory lock, so aggregate maintenance is serialised (and a rebuild sees no half-applied
transaction).
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The advisory lock key for report maintenance (an arbitrary constant: "funnel" in ASCII).
REPORT_LOCK = 0x66756E6E656C
# Histogram: slot 1 holds [0, 1) s; slot k >= 2 holds [2^((k-2)/4), 2^((k-1)/4)) s; the last
# slot everything from 2^26 s (about 2.1 years) on. Mirrored in read/report_histogram.py.
BUCKETS = 106

_TABLES = """
CREATE TABLE report_funnels (
    funnel     text PRIMARY KEY,
    stages     text[] NOT NULL,
    built_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE report_people (
    funnel     text NOT NULL,
    person_id  text NOT NULL,
    firsts     timestamptz[] NOT NULL,
    PRIMARY KEY (funnel, person_id)
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
    us         bigint NOT NULL,  -- the sum of the times, in microseconds
    PRIMARY KEY (funnel, day, stage_idx, bucket)
);
CREATE TABLE report_person_stalls (
    funnel     text NOT NULL,
    person_id  text NOT NULL,
    stage      text NOT NULL,
    day        date NOT NULL,
    PRIMARY KEY (funnel, person_id, stage, day)
);
CREATE TABLE report_dropped (
    funnel     text NOT NULL,
    day        date NOT NULL,
    stage      text NOT NULL,
    prev_day   date NOT NULL,  -- '-infinity': the person's first stall day in this stage
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

-- The person a contact counts as: the contact its first merge (by event time) merged it
-- into, else itself (one level, like the report's definition).
CREATE FUNCTION report_person(contact text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT contact_id FROM contact_merges WHERE merged_contact_id = contact
         ORDER BY event_time, id LIMIT 1),
        contact)
$$;

-- The stage list of a registered funnel (NULL: not registered), after taking the lock.
CREATE FUNCTION report_registered(f text) RETURNS text[]
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({REPORT_LOCK});
    RETURN (SELECT stages FROM report_funnels WHERE funnel = f);
END $$;

-- Add to one stage's figures of one day: reached, went on, and one histogram slot.
CREATE FUNCTION report_reach_add(f text, k integer, d date, dr integer, dw integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO report_reached AS r (funnel, day, stage_idx, reached, went_on)
    VALUES (f, d, k, dr, dw)
    ON CONFLICT (funnel, day, stage_idx) DO UPDATE SET
        reached = r.reached + excluded.reached, went_on = r.went_on + excluded.went_on
$$;

CREATE FUNCTION report_hist_add(f text, k integer, d date, gap interval, sign integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO report_hist AS r (funnel, day, stage_idx, bucket, n, us)
    VALUES (f, d, k, report_bucket(gap), sign, sign * report_micros(gap))
    ON CONFLICT (funnel, day, stage_idx, bucket) DO UPDATE SET
        n = r.n + excluded.n, us = r.us + excluded.us
$$;

-- Replace a person's first-reach times ``old`` by ``new``: only the stages whose figure
-- changes (its own first time or the next stage's) are touched, a day's row once.
CREATE FUNCTION report_reach_delta(f text, n integer, old timestamptz[], new timestamptz[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old_day date;
    new_day date;
    old_gap interval;
    new_gap interval;
BEGIN
    FOR k IN 1..n LOOP
        IF old[k] IS DISTINCT FROM new[k] OR old[k + 1] IS DISTINCT FROM new[k + 1] THEN
            old_day := report_day(old[k]);
            new_day := report_day(new[k]);
            old_gap := CASE WHEN k < n THEN old[k + 1] - old[k] END;
            new_gap := CASE WHEN k < n THEN new[k + 1] - new[k] END;
            IF old_day = new_day THEN
                IF (old_gap IS NULL) <> (new_gap IS NULL) THEN
                    PERFORM report_reach_add(
                        f, k, new_day, 0, CASE WHEN new_gap IS NULL THEN -1 ELSE 1 END);
                END IF;
            ELSE
                IF old_day IS NOT NULL THEN
                    PERFORM report_reach_add(
                        f, k, old_day, -1, CASE WHEN old_gap IS NULL THEN 0 ELSE -1 END);
                END IF;
                IF new_day IS NOT NULL THEN
                    PERFORM report_reach_add(
                        f, k, new_day, 1, CASE WHEN new_gap IS NULL THEN 0 ELSE 1 END);
                END IF;
            END IF;
            IF old_gap IS NOT NULL THEN PERFORM report_hist_add(f, k, old_day, old_gap, -1); END IF;
            IF new_gap IS NOT NULL THEN PERFORM report_hist_add(f, k, new_day, new_gap, 1); END IF;
        END IF;
    END LOOP;
END $$;

-- Add or take away a person's dropped figures in one stage: one per stall day, keyed by
-- the previous stall day (so any range counts the person once).
CREATE FUNCTION report_dropped_add(f text, p text, s text, sign integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_dropped AS r (funnel, day, stage, prev_day, n)
    SELECT f, day, s, coalesce(lag(day) OVER (ORDER BY day), '-infinity'::date), sign
    FROM report_person_stalls WHERE funnel = f AND person_id = p AND stage = s
    ON CONFLICT (funnel, day, stage, prev_day) DO UPDATE SET n = r.n + excluded.n;
END $$;

-- Whether a person counts as dropped at stage s, given its contact_stages row's fields.
CREATE FUNCTION report_droppable(
    stages text[], s text, present boolean, furthest text, merged_into text
) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(present AND merged_into IS NULL
                    AND array_position(stages, furthest) <= array_position(stages, s), false)
$$;

CREATE FUNCTION report_droppable_now(f text, stages text[], p text, s text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT report_droppable(stages, s, true, furthest_stage, merged_into)
                     FROM contact_stages WHERE contact_id = p AND funnel = f), false)
$$;

CREATE FUNCTION report_on_history() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    stages text[] := report_registered(NEW.funnel);
    n integer;
    to_i integer;
    from_i integer;
    p text;
    old timestamptz[];
    new timestamptz[];
BEGIN
    IF stages IS NULL THEN RETURN NULL; END IF;
    to_i := array_position(stages, NEW.to_stage);
    from_i := array_position(stages, NEW.from_stage);
    IF to_i IS NULL OR (from_i IS NOT NULL AND to_i <= from_i) THEN RETURN NULL; END IF;
    n := cardinality(stages);
    p := report_person(NEW.contact_id);
    SELECT firsts INTO old FROM report_people WHERE funnel = NEW.funnel AND person_id = p;
    IF NOT FOUND THEN
        old := array_fill(NULL::timestamptz, ARRAY[n]);
        INSERT INTO report_people (funnel, person_id, firsts) VALUES (NEW.funnel, p, old);
    END IF;
    new := old;
    FOR k IN 1..to_i LOOP
        IF new[k] IS NULL OR NEW.event_time < new[k] THEN new[k] := NEW.event_time; END IF;
    END LOOP;
    IF new IS DISTINCT FROM old THEN
        PERFORM report_reach_delta(NEW.funnel, n, old, new);
        UPDATE report_people SET firsts = new WHERE funnel = NEW.funnel AND person_id = p;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION report_on_stall() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    stages text[] := report_registered(NEW.funnel);
    p text;
    d date := report_day(NEW.event_time);
    counted boolean;
BEGIN
    IF stages IS NULL THEN RETURN NULL; END IF;
    p := report_person(NEW.contact_id);
    IF EXISTS (SELECT 1 FROM report_person_stalls WHERE funnel = NEW.funnel
               AND person_id = p AND stage = NEW.stage AND day = d) THEN
        RETURN NULL;
    END IF;
    counted := report_droppable_now(NEW.funnel, stages, p, NEW.stage);
    IF counted THEN PERFORM report_dropped_add(NEW.funnel, p, NEW.stage, -1); END IF;
    INSERT INTO report_person_stalls (funnel, person_id, stage, day)
    VALUES (NEW.funnel, p, NEW.stage, d);
    IF counted THEN PERFORM report_dropped_add(NEW.funnel, p, NEW.stage, 1); END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION report_on_block() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.current_stage IS NULL OR report_registered(NEW.funnel) IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO report_blocked AS r (funnel, day, stage, n)
    VALUES (NEW.funnel, report_day(NEW.event_time), NEW.current_stage, 1)
    ON CONFLICT (funnel, day, stage) DO UPDATE SET n = r.n + 1;
    RETURN NULL;
END $$;

CREATE FUNCTION report_current_add(f text, s text, stalled boolean, sign integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO report_current AS r (funnel, stage, in_progress, stalled)
    VALUES (f, s, CASE WHEN stalled THEN 0 ELSE sign END, CASE WHEN stalled THEN sign ELSE 0 END)
    ON CONFLICT (funnel, stage) DO UPDATE SET
        in_progress = r.in_progress + excluded.in_progress,
        stalled = r.stalled + excluded.stalled
$$;

-- A contact's row in contact_stages: the "here now" counters, and (the row being its
-- person's) whether its stalls count as dropped.
CREATE FUNCTION report_on_contact() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    f text := coalesce(NEW.funnel, OLD.funnel);
    p text := coalesce(NEW.contact_id, OLD.contact_id);
    stages text[] := report_registered(f);
    was_here boolean := TG_OP <> 'INSERT' AND OLD.merged_into IS NULL;
    is_here boolean := TG_OP <> 'DELETE' AND NEW.merged_into IS NULL;
    stall record;
    before boolean;
    after boolean;
BEGIN
    IF stages IS NULL THEN RETURN NULL; END IF;
    IF was_here IS DISTINCT FROM is_here
       OR (was_here AND (OLD.current_stage IS DISTINCT FROM NEW.current_stage
                         OR (OLD.stalled_at IS NULL) <> (NEW.stalled_at IS NULL))) THEN
        IF was_here THEN
            PERFORM report_current_add(f, OLD.current_stage, OLD.stalled_at IS NOT NULL, -1);
        END IF;
        IF is_here THEN
            PERFORM report_current_add(f, NEW.current_stage, NEW.stalled_at IS NOT NULL, 1);
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.furthest_stage IS NOT DISTINCT FROM NEW.furthest_stage
       AND OLD.merged_into IS NOT DISTINCT FROM NEW.merged_into THEN
        RETURN NULL;
    END IF;
    FOR stall IN SELECT DISTINCT stage FROM report_person_stalls
                 WHERE funnel = f AND person_id = p LOOP
        before := TG_OP <> 'INSERT'
            AND report_droppable(stages, stall.stage, true, OLD.furthest_stage, OLD.merged_into);
        after := TG_OP <> 'DELETE'
            AND report_droppable(stages, stall.stage, true, NEW.furthest_stage, NEW.merged_into);
        IF before AND NOT after THEN
            PERFORM report_dropped_add(f, p, stall.stage, -1);
        ELSIF after AND NOT before THEN
            PERFORM report_dropped_add(f, p, stall.stage, 1);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

-- A merge folds the merged contact's figures into the survivor's, in every registered
-- funnel, once (on the first merge record of that contact).
CREATE FUNCTION report_on_merge() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    a text := NEW.merged_contact_id;
    b text := NEW.contact_id;
    reg record;
    n integer;
    fa timestamptz[];
    fb timestamptz[];
    nb timestamptz[];
    stall record;
    a_counted boolean;
    b_counted boolean;
BEGIN
    PERFORM pg_advisory_xact_lock({REPORT_LOCK});
    IF EXISTS (SELECT 1 FROM contact_merges WHERE merged_contact_id = a AND id <> NEW.id) THEN
        RETURN NULL;
    END IF;
    FOR reg IN SELECT funnel, stages FROM report_funnels ORDER BY funnel LOOP
        n := cardinality(reg.stages);
        SELECT firsts INTO fa FROM report_people WHERE funnel = reg.funnel AND person_id = a;
        IF FOUND THEN
            SELECT firsts INTO fb FROM report_people WHERE funnel = reg.funnel AND person_id = b;
            IF NOT FOUND THEN
                fb := array_fill(NULL::timestamptz, ARRAY[n]);
                INSERT INTO report_people (funnel, person_id, firsts) VALUES (reg.funnel, b, fb);
            END IF;
            nb := fb;
            FOR k IN 1..n LOOP
                IF nb[k] IS NULL OR fa[k] < nb[k] THEN nb[k] := fa[k]; END IF;
            END LOOP;
            PERFORM report_reach_delta(reg.funnel, n, fa, array_fill(NULL::timestamptz, ARRAY[n]));
            PERFORM report_reach_delta(reg.funnel, n, fb, nb);
            DELETE FROM report_people WHERE funnel = reg.funnel AND person_id = a;
            UPDATE report_people SET firsts = nb WHERE funnel = reg.funnel AND person_id = b;
        END IF;
        FOR stall IN SELECT DISTINCT stage FROM report_person_stalls
                     WHERE funnel = reg.funnel AND person_id = a LOOP
            a_counted := report_droppable_now(reg.funnel, reg.stages, a, stall.stage);
            b_counted := report_droppable_now(reg.funnel, reg.stages, b, stall.stage);
            IF a_counted THEN PERFORM report_dropped_add(reg.funnel, a, stall.stage, -1); END IF;
            IF b_counted THEN PERFORM report_dropped_add(reg.funnel, b, stall.stage, -1); END IF;
            INSERT INTO report_person_stalls (funnel, person_id, stage, day)
            SELECT funnel, b, stage, day FROM report_person_stalls
            WHERE funnel = reg.funnel AND person_id = a AND stage = stall.stage
            ON CONFLICT DO NOTHING;
            DELETE FROM report_person_stalls
            WHERE funnel = reg.funnel AND person_id = a AND stage = stall.stage;
            IF b_counted THEN PERFORM report_dropped_add(reg.funnel, b, stall.stage, 1); END IF;
        END LOOP;
    END LOOP;
    RETURN NULL;
END $$;

-- Register a funnel's stage list and build its aggregates from the whole history; nothing
-- to do (false) when that list is already registered.
CREATE FUNCTION report_rebuild(f text, stages text[], force boolean DEFAULT false)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(stages);
BEGIN
    PERFORM pg_advisory_xact_lock({REPORT_LOCK});
    IF NOT force AND (SELECT r.stages FROM report_funnels r WHERE r.funnel = f)
                     IS NOT DISTINCT FROM stages THEN
        RETURN false;
    END IF;
    DELETE FROM report_people WHERE funnel = f;
    DELETE FROM report_reached WHERE funnel = f;
    DELETE FROM report_hist WHERE funnel = f;
    DELETE FROM report_person_stalls WHERE funnel = f;
    DELETE FROM report_dropped WHERE funnel = f;
    DELETE FROM report_current WHERE funnel = f;
    DELETE FROM report_blocked WHERE funnel = f;
    INSERT INTO report_funnels (funnel, stages) VALUES (f, stages)
    ON CONFLICT (funnel) DO UPDATE SET stages = excluded.stages, built_at = now();

    CREATE TEMPORARY TABLE report_merged ON COMMIT DROP AS
        SELECT DISTINCT ON (merged_contact_id) merged_contact_id, contact_id
        FROM contact_merges ORDER BY merged_contact_id, event_time, id;
    CREATE INDEX ON report_merged (merged_contact_id);
    ANALYZE report_merged;

    INSERT INTO report_people (funnel, person_id, firsts)
    WITH moves AS (
        SELECT coalesce(m.contact_id, h.contact_id) AS p, h.event_time AS t,
               array_position(stages, h.to_stage) AS ti,
               array_position(stages, h.from_stage) AS fi
        FROM stage_history h LEFT JOIN report_merged m ON m.merged_contact_id = h.contact_id
        WHERE h.funnel = f
    ), forward AS (
        SELECT p, ti, min(t) AS t FROM moves
        WHERE ti IS NOT NULL AND (fi IS NULL OR ti > fi) GROUP BY p, ti
    ), per_stage AS (
        SELECT fw.p, k, min(fw.t) FILTER (WHERE fw.ti >= k) AS t
        FROM forward fw CROSS JOIN generate_series(1, n) AS k GROUP BY fw.p, k
    )
    SELECT f, p, array_agg(t ORDER BY k) FROM per_stage GROUP BY p;

    INSERT INTO report_reached (funnel, day, stage_idx, reached, went_on)
    SELECT f, report_day(firsts[k]), k, count(*), count(firsts[k + 1]) FILTER (WHERE k < n)
    FROM report_people CROSS JOIN generate_series(1, n) AS k
    WHERE funnel = f AND firsts[k] IS NOT NULL
    GROUP BY report_day(firsts[k]), k;

    INSERT INTO report_hist (funnel, day, stage_idx, bucket, n, us)
    SELECT f, report_day(firsts[k]), k, report_bucket(firsts[k + 1] - firsts[k]), count(*),
           sum(report_micros(firsts[k + 1] - firsts[k]))
    FROM report_people CROSS JOIN generate_series(1, n - 1) AS k
    WHERE funnel = f AND firsts[k + 1] IS NOT NULL
    GROUP BY report_day(firsts[k]), k, report_bucket(firsts[k + 1] - firsts[k]);

    INSERT INTO report_person_stalls (funnel, person_id, stage, day)
    SELECT DISTINCT f, coalesce(m.contact_id, s.contact_id), s.stage, report_day(s.event_time)
    FROM stage_stalls s LEFT JOIN report_merged m ON m.merged_contact_id = s.contact_id
    WHERE s.funnel = f;

    INSERT INTO report_dropped (funnel, day, stage, prev_day, n)
    SELECT f, day, stage, prev_day, count(*) FROM (
        SELECT ps.day, ps.stage,
               coalesce(lag(ps.day) OVER (PARTITION BY ps.person_id, ps.stage ORDER BY ps.day),
                        '-infinity'::date) AS prev_day
        FROM report_person_stalls ps
        JOIN contact_stages c ON c.contact_id = ps.person_id AND c.funnel = f
        WHERE ps.funnel = f
          AND report_droppable(stages, ps.stage, true, c.furthest_stage, c.merged_into)
    ) d GROUP BY day, stage, prev_day;

    INSERT INTO report_current (funnel, stage, in_progress, stalled)
    SELECT f, current_stage, count(*) FILTER (WHERE stalled_at IS NULL),
           count(*) FILTER (WHERE stalled_at IS NOT NULL)
    FROM contact_stages WHERE funnel = f AND merged_into IS NULL GROUP BY current_stage;

    INSERT INTO report_blocked (funnel, day, stage, n)
    SELECT f, report_day(event_time), current_stage, count(*) FROM stage_blocks
    WHERE funnel = f AND current_stage IS NOT NULL
    GROUP BY report_day(event_time), current_stage;

    DROP TABLE report_merged;
    RETURN true;
END $$;
"""

_TRIGGERS = """
CREATE TRIGGER report_history AFTER INSERT ON stage_history
    FOR EACH ROW EXECUTE FUNCTION report_on_history();
CREATE TRIGGER report_stall AFTER INSERT ON stage_stalls
    FOR EACH ROW EXECUTE FUNCTION report_on_stall();
CREATE TRIGGER report_block AFTER INSERT ON stage_blocks
    FOR EACH ROW EXECUTE FUNCTION report_on_block();
CREATE TRIGGER report_merge AFTER INSERT ON contact_merges
    FOR EACH ROW EXECUTE FUNCTION report_on_merge();
CREATE TRIGGER report_contact AFTER INSERT OR UPDATE OR DELETE ON contact_stages
    FOR EACH ROW EXECUTE FUNCTION report_on_contact();
"""

_DROP = """
DROP TRIGGER report_contact ON contact_stages;
DROP TRIGGER report_merge ON contact_merges;
DROP TRIGGER report_block ON stage_blocks;
DROP TRIGGER report_stall ON stage_stalls;
DROP TRIGGER report_history ON stage_history;
DROP FUNCTION report_rebuild(text, text[], boolean);
DROP FUNCTION report_on_merge();
DROP FUNCTION report_on_contact();
DROP FUNCTION report_current_add(text, text, boolean, integer);
DROP FUNCTION report_on_block();
DROP FUNCTION report_on_stall();
DROP FUNCTION report_on_history();
DROP FUNCTION report_droppable_now(text, text[], text, text);
DROP FUNCTION report_droppable(text[], text, boolean, text, text);
DROP FUNCTION report_dropped_add(text, text, text, integer);
DROP FUNCTION report_reach_delta(text, integer, timestamptz[], timestamptz[]);
DROP FUNCTION report_hist_add(text, integer, date, interval, integer);
DROP FUNCTION report_reach_add(text, integer, date, integer, integer);
DROP FUNCTION report_registered(text);
DROP FUNCTION report_person(text);
DROP FUNCTION report_micros(interval);
DROP FUNCTION report_bucket(interval);
DROP FUNCTION report_day(timestamptz);
DROP TABLE report_blocked, report_current, report_dropped, report_person_stalls,
    report_hist, report_reached, report_people, report_funnels;
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
    for statement in _statements(_TRIGGERS):
        op.execute(statement)


def downgrade() -> None:
    for statement in _statements(_DROP):
        op.execute(statement)
