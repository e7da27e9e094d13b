#!/usr/bin/env bash
# deploy/check.sh: the docker-compose deployment, for real (`make deploy-check`).
#
# Builds the three images, starts docker-compose.yml from a fresh .env in a temporary copy
# of the repository, under its own project name (your .env, containers and volumes are
# never touched), and checks what docs/deploy.md promises: health checks, /readyz, the
# docs' batch ending as a stage change in PostgreSQL, a mail in Mailpit and a record on
# funnel.stage-changed.v1, three stage-engine replicas sharing the partitions, PostgreSQL's
# data surviving `down` + `up`. Everything it started is removed at the end, also on
# failure. Each step is printed with its time; every wait is bounded.
#
#   ENGINE=docker COMPOSE="docker compose" deploy/check.sh
#
# ENGINE is the container engine's command (docker, podman), COMPOSE the compose command
# (docker compose, podman-compose). Optional: DEPLOY_CHECK_PROJECT (compose project name,
# default funnel-deploy-check), DEPLOY_CHECK_KEEP_IMAGES=1 (keep the funnel/*:deploy-check
# images), DEPLOY_CHECK_SCALE_PUBLISH (host ports of the three stage-engine replicas,
# default 127.0.0.1:8101-8103). The host ports are the compose file's defaults: 8000, 8001,
# 8002, 8025 and 9094 must be free (or set INGEST_PUBLISH, STAGE_ENGINE_PUBLISH,
# NOTIFIER_PUBLISH, MAILPIT_UI_PUBLISH, KAFKA_HOST_PORT in the environment).
set -uo pipefail

ENGINE=${ENGINE:-docker}
read -r -a COMPOSE_CMD <<<"${COMPOSE:-docker compose}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT=${DEPLOY_CHECK_PROJECT:-funnel-deploy-check}
TAG=deploy-check
IMAGES=(ingest stage-engine notifier)
HEALTHY=(kafka postgres mailpit ingest stage-engine notifier)
JOBS=(init stage-engine-migrate)
SCALE_PUBLISH=${DEPLOY_CHECK_SCALE_PUBLISH:-127.0.0.1:8101-8103}
STAGE_CHANGED_TOPIC=funnel.stage-changed.v1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/funnel-deploy-check.XXXXXX")
DIR=$WORK/project
LOGS=$WORK/logs
mkdir -p "$DIR" "$LOGS"
STEP="start"
STEP_T0=$SECONDS
SUMMARY=()
STARTED=0

# --- output ---------------------------------------------------------------------------------

say() { printf '[deploy-check %s] %s\n' "$(date +%T)" "$*"; }
step() {
    STEP=$*
    STEP_T0=$SECONDS
    printf '\n'
    say "== $STEP"
}
ok() {
    say "   ok: $*"
}
done_step() {
    SUMMARY+=("$(printf '%4ss  %s' "$((SECONDS - STEP_T0))" "$STEP")")
}
fail() {
    say "FAILED in step \"$STEP\": $*" >&2
    exit 1
}

# --- the engine and the project ---------------------------------------------------------------

compose() {  # timeout-seconds args...: the compose command in the project copy
    local limit=$1
    shift
    (cd "$DIR" && timeout "$limit" "${COMPOSE_CMD[@]}" -p "$PROJECT" "$@")
}
containers() {  # [service]: ids of the project's containers
    local filters=(--filter "label=com.docker.compose.project=$PROJECT")
    [ $# = 0 ] || filters+=(--filter "label=com.docker.compose.service=$1")
    "$ENGINE" ps -a -q "${filters[@]}"
}
ctr() {  # service: its first container
    containers "$1" | head -n 1
}
state() {  # container: "running, healthy", "exited 0"...
    "$ENGINE" inspect --format '{{.State.Status}} {{.State.ExitCode}}{{if .State.Health}}, {{.State.Health.Status}}{{end}}' "$1" 2>/dev/null
}
exited() {  # container: "exited 0" once it ended
    "$ENGINE" inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$1" 2>/dev/null
}
psql_value() {  # sql: one value from PostgreSQL
    "$ENGINE" exec "$(ctr postgres)" psql -U funnel -d funnel -tA -c "$1" 2>&1
}
envfile_value() {  # name default: the value .env (or the environment) gives a variable
    local value=${!1:-}
    [ -n "$value" ] || value=$(awk -F= -v k="$1" '$1 == k {sub(/^[^=]*=/, ""); v = $0} END {print v}' "$DIR/.env")
    echo "${value:-$2}"
}
host_port() {  # the host port of an [address:]port publish value
    echo "${1##*:}"
}
ANONYMOUS=$WORK/volumes
touch "$ANONYMOUS"
note_volumes() {  # remember the volumes of the project's containers: `down` keeps anonymous ones
    local c
    for c in $(containers); do
        "$ENGINE" inspect --format '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}' "$c" 2>/dev/null |
            tr ' ' '\n' | grep . >>"$ANONYMOUS"
    done
}
poll() {  # seconds command...: retry every 3 s until the command succeeds; 1 on time-out
    local until=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$until" ] || return 1
        sleep 3
    done
}
healthy() {  # container
    [ "$("$ENGINE" inspect --format '{{.State.Health.Status}}' "$1" 2>/dev/null)" = healthy ]
}
ended() {  # container
    [ "$("$ENGINE" inspect --format '{{.State.Status}}' "$1" 2>/dev/null)" = exited ]
}

# --- teardown, also on failure ------------------------------------------------------------------

teardown() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$STARTED" = 1 ]; then
        if [ "$rc" != 0 ]; then
            say "logs of every container (last 40 lines each; full logs in $LOGS):" >&2
            for c in $(containers); do
                name=$("$ENGINE" inspect --format '{{.Name}}' "$c" 2>/dev/null)
                "$ENGINE" logs "$c" >"$LOGS/${name#/}.log" 2>&1
                printf '\n--- %s (%s)\n' "${name#/}" "$(state "$c")" >&2
                tail -n 40 "$LOGS/${name#/}.log" >&2
            done
        fi
        printf '\n'
        say "== teardown: down -v (containers, volumes and network of $PROJECT)"
        note_volumes
        compose 300 down -v >"$LOGS/down-v.log" 2>&1 || say "   down -v failed: see $LOGS/down-v.log" >&2
        # shellcheck disable=SC2013  # volume names have no spaces
        for volume in $(sort -u "$ANONYMOUS"); do
            "$ENGINE" volume rm "$volume" >/dev/null 2>&1 || true
        done
        left=$(containers | wc -l)
        volumes=$("$ENGINE" volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | wc -l)
        if [ "$left" != 0 ] || [ "$volumes" != 0 ]; then
            say "   left behind: $left containers, $volumes volumes of $PROJECT" >&2
            [ "$rc" != 0 ] || rc=1
        fi
    fi
    if [ "${DEPLOY_CHECK_KEEP_IMAGES:-0}" != 1 ]; then
        for image in "${IMAGES[@]}"; do
            "$ENGINE" image rm "funnel/$image:$TAG" >/dev/null 2>&1 || true
        done
    fi
    if [ "$rc" = 0 ]; then
        rm -rf "$WORK"
        printf '\n'
        say "passed in $SECONDS s:"
        printf '    %s\n' "${SUMMARY[@]}"
    else
        rm -rf "$DIR" "$ANONYMOUS"
        say "FAILED (exit $rc) in step \"$STEP\"; logs kept in $LOGS" >&2
    fi
    exit "$rc"
}
trap teardown EXIT
trap 'fail "interrupted"' INT TERM

# --- 1. preflight ---------------------------------------------------------------------------------

step "preflight: $ENGINE and ${COMPOSE_CMD[*]}"
command -v curl >/dev/null || fail "curl is needed on this machine"
"$ENGINE" version >"$LOGS/engine-version.log" 2>&1 || fail "'$ENGINE version' fails: $(tail -n 3 "$LOGS/engine-version.log")"
"${COMPOSE_CMD[@]}" version >"$LOGS/compose-version.log" 2>&1 ||
    fail "'${COMPOSE_CMD[*]} version' fails: $(tail -n 3 "$LOGS/compose-version.log")"
[ -z "$(containers)" ] || fail "containers of project $PROJECT exist (an earlier run?): remove them first"
ok "$(head -n 1 "$LOGS/compose-version.log")"
done_step

# --- 2. a copy of the repository with a fresh .env ------------------------------------------------

step "fresh .env in a copy of the repository ($DIR)"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    # Tracked and untracked files, as they are now (uncommitted changes included), not ignored ones.
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -) | tar -xf - -C "$DIR" || fail "copying the repository"
else
    (cd "$ROOT" && tar --exclude=./.venv --exclude=./.tools --exclude=./.env -cf - .) | tar -xf - -C "$DIR" ||
        fail "copying the repository"
fi
rm -f "$DIR/.env"
cp "$DIR/.env.example" "$DIR/.env" && chmod 600 "$DIR/.env"
PASSWORD=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
WRITE_KEY=wk_deploy_check_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
STAGE_TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
NOTIFIER_TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
sed -i -e "s|^POSTGRES_PASSWORD=.*|POSTGRES_PASSWORD=$PASSWORD|" \
    -e "s|^INGEST_WRITE_KEYS=.*|INGEST_WRITE_KEYS='{\"website\": \"$WRITE_KEY\"}'|" \
    -e "s|^STAGE_ENGINE_API_TOKENS=.*|STAGE_ENGINE_API_TOKENS=$STAGE_TOKEN|" \
    -e "s|^NOTIFIER_API_TOKENS=.*|NOTIFIER_API_TOKENS=$NOTIFIER_TOKEN|" "$DIR/.env"
echo "FUNNEL_IMAGE_TAG=$TAG" >>"$DIR/.env"
grep -q "^POSTGRES_PASSWORD=$PASSWORD$" "$DIR/.env" || fail ".env.example has no POSTGRES_PASSWORD= line"
grep -q "$WRITE_KEY" "$DIR/.env" || fail ".env.example has no INGEST_WRITE_KEYS= line"
grep -q "^STAGE_ENGINE_API_TOKENS=$STAGE_TOKEN$" "$DIR/.env" || fail ".env.example has no STAGE_ENGINE_API_TOKENS= line"
grep -q "^NOTIFIER_API_TOKENS=$NOTIFIER_TOKEN$" "$DIR/.env" || fail ".env.example has no NOTIFIER_API_TOKENS= line"
INGEST=$(host_port "$(envfile_value INGEST_PUBLISH 8000)")
STAGE=$(host_port "$(envfile_value STAGE_ENGINE_PUBLISH 127.0.0.1:8001)")
NOTIFIER=$(host_port "$(envfile_value NOTIFIER_PUBLISH 127.0.0.1:8002)")
MAILPIT=$(host_port "$(envfile_value MAILPIT_UI_PUBLISH 127.0.0.1:8025)")
PARTITIONS=$(envfile_value KAFKA_PARTITIONS 6)
ok ".env with a random POSTGRES_PASSWORD, write key and API tokens, images tagged :$TAG; ports ingest $INGEST, stage engine $STAGE, notifier $NOTIFIER, Mailpit $MAILPIT"
done_step

# --- 3. images ------------------------------------------------------------------------------------

for image in "${IMAGES[@]}"; do
    step "build the $image image"
    compose 1800 build "$image" >"$LOGS/build-$image.log" 2>&1 ||
        fail "build failed: $(tail -n 15 "$LOGS/build-$image.log")"
    "$ENGINE" image inspect "funnel/$image:$TAG" >/dev/null 2>&1 || fail "no image funnel/$image:$TAG after the build"
    ok "funnel/$image:$TAG"
    done_step
done

# --- 4. up and health -----------------------------------------------------------------------------

wait_for_stack() {
    local svc c
    for svc in "${HEALTHY[@]}"; do
        c=$(ctr "$svc")
        [ -n "$c" ] || fail "no $svc container"
        poll 300 healthy "$c" || fail "$svc is not healthy within 300 s: $(state "$c")"
        ok "$svc: $(state "$c")"
    done
    for svc in "${JOBS[@]}"; do
        c=$(ctr "$svc")
        [ -n "$c" ] || fail "no $svc container"
        poll 300 ended "$c" || fail "$svc has not finished within 300 s: $(state "$c")"
        [ "$(exited "$c")" = "exited 0" ] || fail "$svc: $(state "$c"): $("$ENGINE" logs --tail 20 "$c" 2>&1)"
        ok "$svc: exited 0"
    done
}

ready() {  # port...: every service on these host ports answers /readyz with 200
    local port
    for port in "$@"; do
        poll 300 curl -fsS -m 5 "http://127.0.0.1:$port/readyz" ||
            fail "127.0.0.1:$port/readyz not ready within 300 s: $(curl -sS -m 5 "http://127.0.0.1:$port/readyz" 2>&1 | head -c 300)"
        ok "127.0.0.1:$port/readyz: $(curl -sS -m 5 "http://127.0.0.1:$port/readyz")"
    done
}

step "up -d"
STARTED=1
compose 900 up -d >"$LOGS/up.log" 2>&1 || fail "up -d: $(tail -n 15 "$LOGS/up.log")"
ok "up -d returned"
done_step

step "every health check passes, init and stage-engine-migrate exit 0"
wait_for_stack
done_step

step "only ingest is published beyond 127.0.0.1"
for svc in kafka mailpit stage-engine notifier; do
    bindings=$("$ENGINE" port "$(ctr "$svc")" | tr '\n' ' ')
    [ -n "$bindings" ] || fail "$svc publishes no port"
    for binding in $bindings; do
        case "$binding" in */tcp | */udp | -\>) continue ;; esac
        case "$binding" in 127.0.0.1:*) ;; *) fail "$svc is published on $binding: $bindings" ;; esac
    done
    ok "$svc: $bindings"
done
ok "ingest: $("$ENGINE" port "$(ctr ingest)" | tr '\n' ' ')"
done_step

step "/readyz of ingest, stage engine and notifier"
ready "$INGEST" "$STAGE" "$NOTIFIER"
done_step

status_of() {  # url [curl options...]: the HTTP status code
    local url=$1
    shift
    curl -sS -m 10 -o /dev/null -w '%{http_code}' "$@" "$url"
}
expect_status() {  # want what url [curl options...]
    local want=$1 what=$2 got
    shift 2
    got=$(status_of "$@") || fail "$what: no answer"
    [ "$got" = "$want" ] || fail "$what: HTTP $got, expected $want"
    ok "$what: HTTP $got"
}

step "the read API, the pages and the admin API need their tokens"
expect_status 401 "stage engine /v1/funnels without a token" "http://127.0.0.1:$STAGE/v1/funnels"
expect_status 401 "stage engine /v1/funnels with a wrong token" "http://127.0.0.1:$STAGE/v1/funnels" \
    -H "Authorization: Bearer $NOTIFIER_TOKEN"
expect_status 200 "stage engine /v1/funnels with its token" "http://127.0.0.1:$STAGE/v1/funnels" \
    -H "Authorization: Bearer $STAGE_TOKEN"
expect_status 401 "funnel page without a token" "http://127.0.0.1:$STAGE/funnels/lifecycle"
expect_status 200 "funnel page with the token as the Basic password" \
    "http://127.0.0.1:$STAGE/funnels/lifecycle" -u "me:$STAGE_TOKEN"
expect_status 401 "notifier /v1/followups without a token" "http://127.0.0.1:$NOTIFIER/v1/followups"
expect_status 200 "notifier /v1/followups with its token" "http://127.0.0.1:$NOTIFIER/v1/followups" \
    -H "Authorization: Bearer $NOTIFIER_TOKEN"
expect_status 401 "stage engine /metrics without a token" "http://127.0.0.1:$STAGE/metrics"
done_step

# --- 5. the docs' batch ---------------------------------------------------------------------------

send() {  # json: POST a batch to ingest, fail unless accepted
    local answer
    answer=$(curl -sS -m 30 -u "$WRITE_KEY:" -H 'Content-Type: application/json' \
        "http://127.0.0.1:$INGEST/v1/batch" -d "$1" 2>&1)
    case "$answer" in *'"success":true'* | *'"success": true'*) ok "ingest: $answer" ;; *) fail "ingest answered: $answer" ;; esac
}
has_rows() {  # sql: at least one row
    [ "$(psql_value "$1")" -gt 0 ] 2>/dev/null
}

step "send the docs' batch (docs/deploy.md, step 4)"
send '{
  "batch": [
    {"type": "identify", "userId": "user-1", "traits": {"email": "ada@example.com"}},
    {"type": "track", "userId": "user-1", "event": "Signed Up"}
  ]}'
done_step

step "the stage change in PostgreSQL: received_stage_changes (notifier) and contact_stages (stage engine)"
poll 180 has_rows "select count(*) from received_stage_changes where contact_id = 'user-1'" ||
    fail "no row for user-1 in received_stage_changes within 180 s: $(psql_value 'select contact_id, to_stage from received_stage_changes' | tr '\n' ';')"
ok "received_stage_changes: $(psql_value "select contact_id, funnel, from_stage, to_stage from received_stage_changes where contact_id = 'user-1'" | tr '\n' ';')"
poll 180 has_rows "select count(*) from contact_stages where contact_id = 'user-1'" ||
    fail "no row for user-1 in contact_stages within 180 s: $(psql_value 'select contact_id, current_stage from contact_stages' | tr '\n' ';')"
ok "contact_stages: $(psql_value "select contact_id, funnel, current_stage from contact_stages where contact_id = 'user-1'" | tr '\n' ';')"
done_step

step "a mail to ada@example.com in Mailpit (its HTTP API)"
mail_to_ada() { curl -fsS -m 5 "http://127.0.0.1:$MAILPIT/api/v1/messages" | grep -q ada@example.com; }
poll 180 mail_to_ada ||
    fail "no mail to ada@example.com within 180 s: $(curl -sS -m 5 "http://127.0.0.1:$MAILPIT/api/v1/messages" 2>&1 | head -c 300)"
ok "$(curl -fsS -m 5 "http://127.0.0.1:$MAILPIT/api/v1/messages" | grep -o '"Subject": *"[^"]*"' | head -n 3 | tr '\n' ' ')"
done_step

step "a record for user-1 on $STAGE_CHANGED_TOPIC (aiokafka, inside the notifier container)"
read_topic='
import asyncio, os, sys
from aiokafka import AIOKafkaConsumer

async def main() -> int:
    consumer = AIOKafkaConsumer(
        sys.argv[1], bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for record in records:
                    if sys.argv[2].encode() in record.value:
                        print(f"partition {tp.partition} offset {record.offset}: {record.value.decode()[:240]}")
                        return 0
        print("no such record within 60 s")
        return 1
    finally:
        await consumer.stop()

sys.exit(asyncio.run(main()))
'
record=$(timeout 120 "$ENGINE" exec "$(ctr notifier)" python -c "$read_topic" "$STAGE_CHANGED_TOPIC" '"user-1"' 2>&1) ||
    fail "$record"
ok "$record"
done_step

# --- 6. three stage-engine replicas -----------------------------------------------------------------

partitions_of() {  # port: the contact-events partitions a replica consumes, from its /metrics
    curl -fsS -m 5 -H "Authorization: Bearer $STAGE_TOKEN" "http://127.0.0.1:$1/metrics" |
        sed -n 's/^funnel_stage_engine_consumer_lag{partition="\([0-9]*\)"}.*/\1/p' | sort -n | tr '\n' ' '
}
shared_partitions() {  # ports...: each has some, none twice, all $PARTITIONS covered
    local port all="" mine
    for port in "$@"; do
        mine=$(partitions_of "$port")
        [ -n "$mine" ] || return 1
        all="$all $mine"
    done
    [ "$(tr ' ' '\n' <<<"$all" | grep -c .)" = "$PARTITIONS" ] &&
        [ "$(tr ' ' '\n' <<<"$all" | grep . | sort -u | wc -l)" = "$PARTITIONS" ]
}

step "scale the stage engine to 3 (STAGE_ENGINE_PUBLISH=$SCALE_PUBLISH)"
echo "STAGE_ENGINE_PUBLISH=$SCALE_PUBLISH" >>"$DIR/.env"
first=${SCALE_PUBLISH##*:}
first=${first%-*}
SCALE_PORTS=("$first" "$((first + 1))" "$((first + 2))")
(export STAGE_ENGINE_PUBLISH=$SCALE_PUBLISH && compose 900 up -d --scale stage-engine=3) >"$LOGS/scale.log" 2>&1 ||
    fail "up -d --scale stage-engine=3: $(tail -n 15 "$LOGS/scale.log")"
replicas=$(containers stage-engine | wc -l)
[ "$replicas" = 3 ] || fail "$replicas stage-engine containers, not 3"
for c in $(containers stage-engine); do
    poll 300 healthy "$c" || fail "a stage-engine replica is not healthy within 300 s: $(state "$c")"
done
ok "3 stage-engine containers, healthy"
ready "${SCALE_PORTS[@]}"
done_step

step "events still flow with 3 replicas, and they share the $PARTITIONS partitions"
batch='{"batch": ['
for n in $(seq 1 24); do
    batch="$batch{\"type\": \"identify\", \"userId\": \"scale-$n\", \"traits\": {\"email\": \"scale-$n@example.com\"}},"
    batch="$batch{\"type\": \"track\", \"userId\": \"scale-$n\", \"event\": \"Signed Up\"},"
done
send "${batch%,}]}"
all_arrived() {
    [ "$(psql_value "select count(distinct contact_id) from received_stage_changes where contact_id like 'scale-%'")" = 24 ]
}
poll 300 all_arrived ||
    fail "not all 24 new contacts' stage changes arrived within 300 s: $(psql_value "select count(distinct contact_id) from received_stage_changes where contact_id like 'scale-%'")"
ok "24 of 24 new contacts' stage changes arrived"
poll 120 shared_partitions "${SCALE_PORTS[@]}" ||
    fail "the replicas do not share the $PARTITIONS partitions: $(for p in "${SCALE_PORTS[@]}"; do printf '%s: { %s} ' "$p" "$(partitions_of "$p")"; done)"
for port in "${SCALE_PORTS[@]}"; do ok "replica on $port consumes partitions { $(partitions_of "$port")}"; done
done_step

# --- 7. down and up: PostgreSQL's data kept ----------------------------------------------------------

step "down, then up -d: PostgreSQL's data survives"
before=$(psql_value "select (select count(*) from received_stage_changes) || ' stage changes received, ' || (select count(*) from contact_stages) || ' contact stages'")
sed -i "/^STAGE_ENGINE_PUBLISH=/d" "$DIR/.env"
note_volumes
compose 300 down >"$LOGS/down.log" 2>&1 || fail "down: $(tail -n 15 "$LOGS/down.log")"
[ -z "$(containers)" ] || fail "containers left after down: $(containers | tr '\n' ' ')"
ok "down: no containers left; volumes: $("$ENGINE" volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | tr '\n' ' ')"
compose 900 up -d >"$LOGS/up-again.log" 2>&1 || fail "up -d: $(tail -n 15 "$LOGS/up-again.log")"
wait_for_stack
after=$(psql_value "select (select count(*) from received_stage_changes) || ' stage changes received, ' || (select count(*) from contact_stages) || ' contact stages'")
[ "$before" = "$after" ] || fail "before down: $before; after up: $after"
ok "still $after"
ready "$INGEST" "$STAGE" "$NOTIFIER"
done_step

trap - INT TERM
