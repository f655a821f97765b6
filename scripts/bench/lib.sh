# shellcheck shell=bash
# Shared benchmark harness, sourced by the scripts in scripts/bench/ (see README.md there).
#
# Everything runs against this machine only: PostgreSQL on 127.0.0.1 and a coupond started here.
# Cleanups (stop the server, drop databases) run on exit in reverse order of registration.

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH_PG_HOST="${BENCH_PG_HOST:-127.0.0.1}"
BENCH_PG_PORT="${BENCH_PG_PORT:-5432}"
BENCH_PG_USER="${BENCH_PG_USER:-postgres}"
# Logs are kept after the run so a surprising figure can be looked into.
BENCH_LOG_DIR="${BENCH_LOG_DIR:-$(mktemp -d -t coupond-bench.XXXXXX)}"
export BENCH_ROOT BENCH_LOG_DIR

_bench_cleanups=()

bench_log() { echo "bench: $*" >&2; }
bench_die() {
    echo "bench: ERROR: $*" >&2
    exit 1
}

# Registers a command to run on exit; one EXIT trap runs them all, newest first, because bash
# keeps only one trap per signal and a later `trap` would silently replace an earlier cleanup.
bench_on_exit() { _bench_cleanups+=("$1"); }
_bench_run_cleanups() {
    local i
    for ((i = ${#_bench_cleanups[@]} - 1; i >= 0; i--)); do
        eval "${_bench_cleanups[i]}" || true
    done
    _bench_cleanups=()
}
trap _bench_run_cleanups EXIT
# Turn Ctrl-C and SIGTERM into a normal exit so the EXIT cleanups still run.
trap 'exit 130' INT
trap 'exit 143' TERM

_bench_psql() {
    psql -h "$BENCH_PG_HOST" -p "$BENCH_PG_PORT" -U "$BENCH_PG_USER" -d postgres \
        -v ON_ERROR_STOP=1 -Atqc "$1"
}

_bench_random() { od -An -N4 -tx4 /dev/urandom | tr -d ' \n'; }

# Installs wrk, psql/pgbench and curl with apt when missing (apt-get update only if needed).
bench_require_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    { command -v psql >/dev/null && command -v pgbench >/dev/null; } || missing+=(postgresql-client)
    command -v curl >/dev/null || missing+=(curl)
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    bench_log "installing ${missing[*]}"
    "${sudo[@]}" apt-get update -qq >/dev/null
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}

_bench_pg_reachable() { (exec 3<>"/dev/tcp/$BENCH_PG_HOST/$BENCH_PG_PORT") 2>/dev/null; }

# Makes sure PostgreSQL answers (starting a local cluster if one is installed but stopped),
# creates a fresh database and exports COUPOND_DATABASE_URL to it; it is dropped on exit.
bench_pg_up() {
    if ! _bench_pg_reachable && [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
        local dir
        for dir in /etc/postgresql/*/; do
            bench_log "starting PostgreSQL $(basename "$dir")"
            pg_ctlcluster --skip-systemctl-redirect "$(basename "$dir")" main start || true
        done
        local _
        for _ in $(seq 1 30); do
            _bench_pg_reachable && break
            sleep 1
        done
    fi
    _bench_pg_reachable || bench_die "no PostgreSQL answers on $BENCH_PG_HOST:$BENCH_PG_PORT"
    BENCH_DB="coupond_bench_$(_bench_random)"
    _bench_psql "CREATE DATABASE $BENCH_DB" || bench_die "cannot create database $BENCH_DB"
    # FORCE: a server that failed to stop must not leave the database behind.
    bench_on_exit "_bench_psql 'DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)'"
    export BENCH_DB
    export COUPOND_DATABASE_URL="postgres://$BENCH_PG_USER@$BENCH_PG_HOST:$BENCH_PG_PORT/$BENCH_DB"
    # TCP by default, as production reaches its database (coupond sets TCP_NODELAY, see
    # vendor/README.md); BENCH_PG_SOCKET=1 uses the local Unix socket instead.
    local socket_dir=/var/run/postgresql
    if [ -n "${BENCH_PG_SOCKET:-}" ] && [ -S "$socket_dir/.s.PGSQL.$BENCH_PG_PORT" ]; then
        COUPOND_DATABASE_URL="postgres://$BENCH_PG_USER@localhost/$BENCH_DB?host=$socket_dir&port=$BENCH_PG_PORT"
    fi
    bench_log "database $BENCH_DB ($COUPOND_DATABASE_URL)"
}

# Builds the release binary once per run and exports BENCH_BIN (honours CARGO_TARGET_DIR).
bench_build() {
    if [ -z "${BENCH_BIN:-}" ]; then
        (cd "$BENCH_ROOT" && cargo build --release --quiet) || bench_die "release build failed"
        local target="${CARGO_TARGET_DIR:-target}"
        [[ "$target" = /* ]] || target="$BENCH_ROOT/$target"
        BENCH_BIN="$target/release/coupond"
        export BENCH_BIN
    fi
    [ -x "$BENCH_BIN" ] || bench_die "no binary at $BENCH_BIN"
}

_bench_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts `coupond serve` on a free port, exports BENCH_URL once /readyz answers; stopped on exit.
# Without bench_pg_up it serves a SQLite file in the log directory.
bench_serve() {
    [ -n "${BENCH_BIN:-}" ] || bench_die "call bench_build before bench_serve"
    # One key drives every request: the abuse limits would measure themselves, not the path.
    export COUPOND_RATE_LIMIT_PER_KEY=0 COUPOND_RATE_LIMIT_PER_CUSTOMER=0
    export COUPOND_RATE_LIMIT_UNKNOWN_CODES=0 COUPOND_RATE_LIMIT_AUTH_FAILURES=0
    # Bench receivers (webhooks, remote sources) listen on loopback.
    export COUPOND_ALLOW_PRIVATE_URLS=1
    export COUPOND_DATABASE_URL="${COUPOND_DATABASE_URL:-sqlite://$BENCH_LOG_DIR/coupond.db?mode=rwc}"
    local port="" candidate _
    for _ in $(seq 1 50); do
        candidate=$((20000 + RANDOM % 40000))
        if _bench_port_free "$candidate"; then
            port=$candidate
            break
        fi
    done
    [ -n "$port" ] || bench_die "no free port found"
    BENCH_SERVER_LOG="$BENCH_LOG_DIR/server.log"
    # The server logs to stderr; plain text keeps the log readable in an editor.
    NO_COLOR=1 COUPOND_LOG="${COUPOND_LOG:-warn}" "$BENCH_BIN" serve --bind "127.0.0.1:$port" \
        >"$BENCH_SERVER_LOG" 2>&1 &
    BENCH_SERVER_PID=$!
    bench_on_exit "_bench_stop_server $BENCH_SERVER_PID"
    export BENCH_URL="http://127.0.0.1:$port" BENCH_SERVER_LOG BENCH_SERVER_PID
    for _ in $(seq 1 120); do
        if ! kill -0 "$BENCH_SERVER_PID" 2>/dev/null; then
            tail -n 20 "$BENCH_SERVER_LOG" >&2
            bench_die "coupond exited during start-up (log: $BENCH_SERVER_LOG)"
        fi
        curl -fsS -o /dev/null --max-time 2 "$BENCH_URL/readyz" 2>/dev/null && {
            bench_log "coupond ready at $BENCH_URL (log: $BENCH_SERVER_LOG)"
            return 0
        }
        sleep 0.5
    done
    bench_die "coupond not ready after 60 s (log: $BENCH_SERVER_LOG)"
}

_bench_stop_server() {
    local pid=$1 _
    kill -TERM "$pid" 2>/dev/null || return 0
    # Longer than the server's default 10 s shutdown grace.
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# Creates an org named `bench`; exports BENCH_KEY (its admin API key) and BENCH_ORG_ID.
bench_org() {
    [ -n "${BENCH_BIN:-}" ] || bench_die "call bench_build before bench_org"
    local out
    out=$(NO_COLOR=1 COUPOND_LOG=warn "$BENCH_BIN" org create --name bench) ||
        bench_die "org create failed"
    BENCH_KEY=$(sed -n 's/.*"api_key": *"\([^"]*\)".*/\1/p' <<<"$out")
    BENCH_ORG_ID=$(sed -n 's/.*"org_id": *\([0-9]*\).*/\1/p' <<<"$out")
    [ -n "$BENCH_KEY" ] || bench_die "no api_key in: $out"
    export BENCH_KEY BENCH_ORG_ID
}

# bench_wrk URL_PATH LUA_SCRIPT DURATION CONNECTIONS
# Runs wrk and prints one summary line; sets BENCH_RPS, BENCH_P50, BENCH_P99 and BENCH_CPU (CPU
# per request of the server and of every PostgreSQL process on this machine, and WAL written
# per request) for the caller.
bench_wrk() {
    [ $# -eq 4 ] || bench_die "usage: bench_wrk URL_PATH LUA_SCRIPT DURATION CONNECTIONS"
    local path=$1 script=$2 duration=$3 connections=$4
    [ -n "${BENCH_URL:-}" ] || bench_die "call bench_serve before bench_wrk"
    [ -f "$script" ] || bench_die "no Lua script at $script"
    local log server_before pg_before wal_before
    log=$(mktemp --suffix=.log "$BENCH_LOG_DIR/wrk-$(basename "$script" .lua)-c$connections-XXXX")
    server_before=$(_bench_cpu_ticks $(_bench_server_pids))
    pg_before=$(_bench_cpu_ticks $(pgrep -x postgres))
    wal_before=$(_bench_wal_bytes)
    wrk -t2 -c"$connections" -d"$duration" --latency -s "$script" "$BENCH_URL$path" >"$log" 2>&1 ||
        bench_die "wrk failed (log: $log)"
    local server_ticks=$(($(_bench_cpu_ticks $(_bench_server_pids)) - server_before))
    local pg_ticks=$(($(_bench_cpu_ticks $(pgrep -x postgres)) - pg_before))
    local wal_bytes=$(($(_bench_wal_bytes) - wal_before))
    BENCH_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$log")
    BENCH_P50=$(awk '$1 == "50%" {print $2}' "$log")
    BENCH_P99=$(awk '$1 == "99%" {print $2}' "$log")
    local requests bad errors
    requests=$(awk '/requests in/ {print $1}' "$log")
    bad=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$log")
    errors=$(awk '/Socket errors/ {sub(/^ +/, ""); print; exit}' "$log")
    local note=""
    # A fast run of 401s or 404s is not a result; say so on the same line.
    [ -n "$bad" ] && note+=" WARNING: $bad of $requests responses were not 2xx/3xx;"
    [ -n "$errors" ] && note+=" WARNING: $errors;"
    BENCH_CPU="$(_bench_per_request "$server_ticks" "$requests") ms server CPU and"
    BENCH_CPU+=" $(_bench_per_request "$pg_ticks" "$requests") ms PostgreSQL CPU per request,"
    BENCH_CPU+=" $(awk -v b="$wal_bytes" -v n="$requests" 'BEGIN { if (n > 0) printf "%.1f", b / 1024 / n; else print "?" }') kB WAL per request"
    export BENCH_RPS BENCH_P50 BENCH_P99 BENCH_CPU
    echo "wrk $path: ${BENCH_RPS:-?} req/s, p50 ${BENCH_P50:-?}, p99 ${BENCH_P99:-?}, $BENCH_CPU" \
        "(c=$connections, $duration, $requests requests;${note:- all 2xx/3xx;} log: $log)"
}

# _bench_wal_bytes: the WAL PostgreSQL has written since its statistics were reset (the whole
# server's, so other databases' writes count too).
_bench_wal_bytes() { _bench_psql "SELECT wal_bytes::bigint FROM pg_stat_wal"; }

# The processes serving BENCH_URL: BENCH_SERVER_PIDS (several replicas) or BENCH_SERVER_PID.
_bench_server_pids() { echo "${BENCH_SERVER_PIDS:-${BENCH_SERVER_PID:-}}"; }

# _bench_cpu_ticks PID...: user + system CPU the processes have used so far, in clock ticks
# (processes that are gone count 0).
_bench_cpu_ticks() {
    local pid total=0 fields
    for pid in "$@"; do
        fields=$(cut -d')' -f2- "/proc/$pid/stat" 2>/dev/null) || continue
        # After the command name: state is field 3, utime 14 and stime 15 of the whole line.
        total=$((total + $(awk '{print $12 + $13}' <<<"$fields")))
    done
    echo "$total"
}

# _bench_per_request TICKS REQUESTS: milliseconds of CPU per request, two decimals.
_bench_per_request() {
    awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (n > 0) printf "%.2f", t * 1000 / hz / n; else print "?" }'
}

# Plain PostgreSQL write rate on this machine, for comparison with the service's issue rate:
# pgbench's simple-update script (-N) on its own scratch database, 16 clients for 20 s.
bench_pgbench() {
    local db log
    db="coupond_pgbench_$(_bench_random)"
    log=$(mktemp --suffix=.log "$BENCH_LOG_DIR/pgbench-XXXX")
    local conn=(-h "$BENCH_PG_HOST" -p "$BENCH_PG_PORT" -U "$BENCH_PG_USER")
    _bench_psql "CREATE DATABASE $db" || bench_die "cannot create database $db"
    bench_on_exit "_bench_psql 'DROP DATABASE IF EXISTS $db WITH (FORCE)'"
    pgbench "${conn[@]}" -i -q "$db" >"$log" 2>&1 || bench_die "pgbench -i failed (log: $log)"
    pgbench "${conn[@]}" -N -c 16 -j 2 -T 20 "$db" >>"$log" 2>&1 ||
        bench_die "pgbench failed (log: $log)"
    BENCH_PGBENCH_TPS=$(awk '/^tps = / {print $3; exit}' "$log")
    export BENCH_PGBENCH_TPS
    echo "pgbench -N -c 16 -j 2 -T 20: ${BENCH_PGBENCH_TPS:-?} tps (log: $log)"
}
