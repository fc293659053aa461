#!/usr/bin/env bash
# Benchmark (not a test): the store on PostgreSQL (`store.url`) beside the
# SQLite file, in one run of this script, on one machine:
#   idle   an hourly run with nothing due over N stored carts (default
#          1,000,000; examples/gen_store.rs's history, as hourly runs left
#          it), on SQLite and on PostgreSQL (the same store, moved with
#          `recart store copy`). Target on PostgreSQL: < 0.5 s.
#   send   MAILS due carts (default 20,000) sent into Postfix's smtp-sink
#          by 1 worker on SQLite, 1 worker on PostgreSQL (target: ≥ 0.7×
#          SQLite's rate), and 2 workers at once on PostgreSQL (target:
#          ≥ 1.0× of 1 worker on this 2-core machine, the sink sharing the
#          cores); claims (mails) per second.
#
#   benches/postgres-store.sh [--quick] [N]
#     --quick   N = 20,000, MAILS = 2,000
#     MAILS, CONNECTIONS (per worker, default 4), ROUNDS (send rounds,
#     default 3), IDLE_RUNS (default 5): env. Each figure is given with
#     its anchor from the same round; the summary lines are medians.
# Needs postgresql (a throwaway server is started: scripts/postgres-for-tests)
# and postfix (smtp-sink); run as root or as a user who may run initdb.
set -euo pipefail
N=1000000
MAILS=${MAILS:-20000}
CONNECTIONS=${CONNECTIONS:-4}
ROUNDS=${ROUNDS:-3}
IDLE_RUNS=${IDLE_RUNS:-5}
for arg in "$@"; do
  case $arg in
    --quick) N=20000; MAILS=${MAILS_QUICK:-2000} ;;
    -*) echo "usage: $0 [--quick] [N]" >&2; exit 2 ;;
    *) N=$arg ;;
  esac
done
NOW=2026-11-21T12:00:00Z
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/recart-pgbench.XXXXXX")
chmod 755 "$WORK"
SINK_PID=
cleanup() {
  [[ -n $SINK_PID ]] && kill "$SINK_PID" 2>/dev/null || true
  TMPDIR=$WORK "$ROOT/scripts/postgres-for-tests" stop
  rm -rf "$WORK"
}
trap cleanup EXIT
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin recart --example gen_store
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
BIN=$TARGET/recart
GEN=$TARGET/examples/gen_store
# A server of its own (under WORK): a test server that is running stays.
eval "$(TMPDIR=$WORK "$ROOT/scripts/postgres-for-tests" start)"
PG=$RECART_TEST_POSTGRES
psql() { command psql -q -h 127.0.0.1 -p "${PG##*:}" -U postgres "$@"; }

SINK=$(command -v smtp-sink || true)
for candidate in /usr/sbin/smtp-sink /usr/lib/postfix/sbin/smtp-sink; do
  [[ -z $SINK && -x $candidate ]] && SINK=$candidate
done
[[ -n $SINK ]] || { echo "$0: smtp-sink not found (apt-get install postfix)" >&2; exit 1; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SINK_USER=(); [[ $(id -u) -eq 0 ]] && SINK_USER=(-u nobody)
"$SINK" "${SINK_USER[@]}" "127.0.0.1:$PORT" 256 > "$WORK/sink.log" 2>&1 &
SINK_PID=$!
sleep 0.5

export RECART_SECRET=bench-secret-key-0123456789abcdef
"$BIN" init "$WORK/shop" > /dev/null 2>&1
# No sources: the runs read the generated store only.
sed -i '/^\[\[sources\]\]/,/^format/d; /^not_before = /d' "$WORK/shop/recart.toml"
shop_config() { # store section → a config file's path
  local dir=$WORK/config-$RANDOM
  mkdir "$dir"
  cp -r "$WORK/shop/templates" "$dir/"
  sed -e "s|^\[store\]|[store]\n$1|" \
      -e "s|^kind = \"file\"|kind = \"smtp\"\nhost = \"127.0.0.1\"\nport = $PORT\ntls = \"none\"\nconnections = $CONNECTIONS|" \
      -e '/^dir = "outbox"/d' -e '/^path = "recart.db"/d' "$WORK/shop/recart.toml" > "$dir/recart.toml"
  grep -q '^\[store\]' "$dir/recart.toml" || printf '\n[store]\n%s\n' "$1" >> "$dir/recart.toml"
  echo "$dir/recart.toml"
}
# A PostgreSQL copy of SQLite store $1 in a new database $2; its config.
postgres_copy() {
  psql -d postgres -c "DROP DATABASE IF EXISTS $2" -c "CREATE DATABASE $2"
  local sqlite_config; sqlite_config=$(shop_config "path = \"$1\"")
  "$BIN" --config "$sqlite_config" store copy --to "$PG/$2" > /dev/null
  # Statistics, and the copy written out: no background flush of it
  # during the measured run.
  psql -d "$2" -c "VACUUM ANALYZE" -c "CHECKPOINT"
  shop_config "url = \"$PG/$2\""
}
# seconds of one command
timed() { /usr/bin/time -f "%e" -o "$WORK/time" "$@" > /dev/null 2> "$WORK/err" || {
  status=$?; cat "$WORK/err" >&2; [[ $status -eq 3 ]] || exit 1; }; cat "$WORK/time"; }

printf '%s cores, %s; PostgreSQL %s\n' "$(nproc)" "$(uname -m)" "$(psql -d postgres -tAc 'SHOW server_version')"

# --- idle ---------------------------------------------------------------
days=$((N * 365 / 1000000)); [[ $days -ge 1 ]] || days=1
"$GEN" --carts "$N" --due 0 --days "$days" --now "$NOW" --out "$WORK/idle.db" 2> /dev/null
pg_idle=$(postgres_copy "$WORK/idle.db" idle)
sqlite_idle=$(shop_config "path = \"$WORK/idle.db\"")
"$BIN" --config "$sqlite_idle" run --now "$NOW" > /dev/null 2>&1   # warm both
"$BIN" --config "$pg_idle" run --now "$NOW" > /dev/null 2>&1
# The median of a few runs: one run's time on this shared machine varies
# by a fifth from one run to the next.
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
idle_runs() { local i; for ((i = 0; i < IDLE_RUNS; i++)); do timed "$BIN" --config "$1" run --now "$NOW"; done; }
printf '\nidle run over %d stored carts (nothing due), median of %d runs\n' "$N" "$IDLE_RUNS"
mapfile -t times < <(idle_runs "$sqlite_idle")
printf '  %-28s %8s s   (runs: %s)\n' "SQLite (anchor)" "$(median "${times[@]}")" "${times[*]}"
mapfile -t times < <(idle_runs "$pg_idle")
printf '  %-28s %8s s   (runs: %s; target < 0.5 s)\n' "PostgreSQL" "$(median "${times[@]}")" "${times[*]}"

# --- send ---------------------------------------------------------------
"$GEN" --carts "$MAILS" --due "$MAILS" --days 1 --now "$NOW" --out "$WORK/due.db" 2> /dev/null
rate() { echo "scale=0; $MAILS / $1" | bc; }
ratio() { printf "%.2f" "$(echo "$1 / $2" | bc -l)"; }
postgres_copy "$WORK/due.db" due_template > /dev/null
# A fresh store for each run: a PostgreSQL database made from that copy.
fresh_postgres() {
  psql -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1 TEMPLATE due_template" \
       -c "CHECKPOINT"
  shop_config "url = \"$PG/$1\""
}
printf '\nsending %d due reminders into smtp-sink, %d connection(s) per worker, %d rounds\n' \
  "$MAILS" "$CONNECTIONS" "$ROUNDS"
ratios_one=(); ratios_two=()
for ((round = 1; round <= ROUNDS; round++)); do
  cp "$WORK/due.db" "$WORK/due-sqlite.db"
  s_sqlite=$(timed "$BIN" --config "$(shop_config "path = \"$WORK/due-sqlite.db\"")" run --now "$NOW")
  pg_one=$(fresh_postgres due_one)
  s_one=$(timed "$BIN" --config "$pg_one" run --now "$NOW")
  pg_two=$(fresh_postgres due_two)
  start=$(date +%s.%N)
  "$BIN" --config "$pg_two" run --now "$NOW" > /dev/null 2>&1 & first=$!
  "$BIN" --config "$pg_two" run --now "$NOW" > /dev/null 2>&1 & second=$!
  wait "$first" || [[ $? -eq 3 ]]; wait "$second" || [[ $? -eq 3 ]]
  s_two=$(printf '%.2f' "$(echo "$(date +%s.%N) - $start" | bc -l)")
  ratios_one+=("$(ratio "$s_sqlite" "$s_one")"); ratios_two+=("$(ratio "$s_one" "$s_two")")
  printf '  round %d: SQLite %s s (%s mails/s); PostgreSQL 1 worker %s s (%s mails/s, %s× SQLite); 2 workers %s s (%s claims/s, %s× 1 worker)\n' \
    "$round" "$s_sqlite" "$(rate "$s_sqlite")" "$s_one" "$(rate "$s_one")" "${ratios_one[-1]}" \
    "$s_two" "$(rate "$s_two")" "${ratios_two[-1]}"
done
printf '  %-28s %s× SQLite (median; target ≥ 0.7×)\n' "1 worker, PostgreSQL" "$(median "${ratios_one[@]}")"
printf '  %-28s %s× 1 worker (median; target ≥ 1.0×)\n' "2 workers, PostgreSQL" "$(median "${ratios_two[@]}")"
sent=$(psql -d due_two -tAc "SELECT count(*) FROM recart.sends WHERE state = 'sent'")
[[ $sent -eq $MAILS ]] || { echo "$0: 2 workers sent $sent of $MAILS" >&2; exit 1; }
