#!/bin/sh
# Benchmark (not a test): a Magento-shaped MariaDB (the magento2 fixture's
# schema) with N quotes of 3 items and 2 addresses each, generated inside MariaDB
# (seq_1_to_N of the Sequence engine): a quote every 30 s from 2025-10-01
# (a million: until 2026-09-11), each saved again within the hour. All
# were last active long before --now (2026-11-21) minus policy.max_age (7
# days): as in a shop's database, where most active quotes are old, the
# runs' planning finds no candidate, so the runs measure the source.
# Prints, side by side:
#   - "the server alone": the server's CPU for the preset's carts query
#     and its items queries (batches of 2,000 ids), run by the mariadb
#     client: the floor of the first import where both share the cores.
#   - "recart run, first import": an empty store, the watermark unset: the
#     whole of `recart run` (connect, carts and items queries, grouping,
#     the store's bulk load, an empty plan). carts/s = N / wall time.
#   - "recart run, idle": the same run again, nothing changed since the
#     watermark: what an hourly run of a quiet shop costs (the carts query
#     with :since, re-reading the watermark's own second).
#   - the anchor, the database's own bulk export then `recart import`:
#     the same rows joined into a table, `mysqldump --tab` of it (the
#     server writes the file itself, as SELECT ... INTO OUTFILE) and
#     `recart import` of the CSV (with its header prepended); without
#     mysqldump, SELECT ... INTO OUTFILE of the join. Each part is timed
#     and the sum is given in carts/s.
# Each line gives recart's CPU (user + sys) and the server's (MariaDB runs
# on the same cores); wall times are noisy on a shared machine.
#   benches/db-source.sh [N]     (default 1000000)
#   benches/db-source.sh --quick (20000)
# Needs mariadb-server; run as root (the server runs as user mysql).
set -eu
N=${1:-1000000}
[ "$N" = "--quick" ] && N=20000
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/recart-dbbench.XXXXXX)
chmod 755 "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/recart
mkdir "$WORK/dump"
chown mysql:mysql "$WORK" "$WORK/dump"
mariadb-install-db --user=mysql --auth-root-authentication-method=normal \
    --datadir="$WORK/data" > /dev/null
/usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$WORK/data" --port="$PORT" \
    --bind-address=127.0.0.1 --socket="$WORK/mysqld.sock" --skip-grant-tables \
    --innodb-flush-log-at-trx-commit=0 --innodb-buffer-pool-size=1G \
    --secure-file-priv="$WORK/dump" > "$WORK/server.log" 2>&1 &
PID=$!
until mariadb -h 127.0.0.1 -P "$PORT" -u root -e 'SELECT 1' > /dev/null 2>&1; do sleep 0.2; done
sql() { mariadb -h 127.0.0.1 -P "$PORT" -u root "$@"; }
sql -e 'CREATE DATABASE magento'
# The fixture's schema, without its rows.
sed -n '/^CREATE TABLE/,/^);/p' "$ROOT/tests/data/presets/magento2.sql" | sql magento
START=$(date +%s)
sql magento > /dev/null <<SQL
SET time_zone = '+00:00';
INSERT INTO quote (entity_id, store_id, created_at, updated_at, is_active, items_count,
                   customer_email, customer_firstname, quote_currency_code)
SELECT seq, 1, '2025-10-01 00:00:00' + INTERVAL (seq * 30) SECOND,
       '2025-10-01 00:00:00' + INTERVAL (seq * 30 + seq MOD 3600) SECOND, 1, 3,
       CONCAT('p', seq, '@example.com'), CONCAT('P', seq), 'EUR'
FROM seq_1_to_$N;
INSERT INTO quote_item (quote_id, sku, name, qty, price)
SELECT q.seq, CONCAT('SKU-', i.seq), CONCAT('Product ', i.seq), i.seq, 9.9900 * i.seq
FROM seq_1_to_$N q, seq_1_to_3 i;
-- Magento saves a billing and a shipping address with a quote that has
-- items (the guest's e-mail is the billing one's). Left empty, the table
-- would be joined through a join buffer, which makes MariaDB sort the
-- whole join before its first row instead of sorting the quotes alone.
INSERT INTO quote_address (quote_id, address_type, email, firstname)
SELECT q.seq, t.kind, CONCAT('p', q.seq, '@example.com'), CONCAT('P', q.seq)
FROM seq_1_to_$N q, (SELECT 'billing' AS kind UNION ALL SELECT 'shipping') t;
INSERT INTO newsletter_subscriber (store_id, subscriber_email, subscriber_status)
SELECT 1, CONCAT('p', seq, '@example.com'), 1 FROM seq_1_to_$N;
CREATE INDEX subscriber_email ON newsletter_subscriber (subscriber_email);
CREATE INDEX quote_address_quote ON quote_address (quote_id);
-- A live shop's tables have statistics: without them MariaDB may take
-- quote_address for empty and join it through a buffer.
ANALYZE TABLE quote, quote_address, quote_item, newsletter_subscriber;
SQL
echo "$N quotes, $((N * 3)) items, $((N * 2)) addresses generated in $(($(date +%s) - START)) s"
config() { # dir, [[sources]] body: init's templates, then this config
    "$BIN" init "$1" > /dev/null
    cat > "$1/recart.toml" <<TOML
[links]
recover = "https://shop.example/r/{token}"
unsubscribe = "https://shop.example/u/{token}"
secret_env = "RECART_SECRET"
[transport]
kind = "file"
dir = "outbox"
from = "Shop <hello@shop.example>"
# Nothing is due: the runs measure the import.
[[steps]]
name = "late"
after = "30d"
template = "reminder"
[[sources]]
$2
TOML
}
export RECART_SECRET=benchmark-secret-benchmark-secret
NOW=2026-11-21T12:00:00Z
server_cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; } # centiseconds
measure() { # label, carts (0: no rate), command...
    label=$1; count=$2; shift 2
    before=$(server_cpu)
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" > /dev/null 2> "$WORK/stderr" || {
        cat "$WORK/stderr"; exit 1; }
    read -r secs user sys kb < "$WORK/time"
    cpu=$(echo "$user + $sys" | bc)
    server=$(echo "scale=2; ($(server_cpu) - $before) / 100" | bc)
    rate=""
    [ "$count" -gt 0 ] && rate=", $(echo "$count / ($secs + 0.001)" | bc) carts/s"
    echo "$label: $secs s (CPU $cpu s, the server's $server s)$rate, peak RSS $((kb / 1024)) MB"
}
config "$WORK/db" "url = \"mysql://root@127.0.0.1:$PORT/magento\"
preset = \"magento2\""
# The floor: what the server alone spends on the rows the preset reads,
# its queries run by the mariadb client into /dev/null (the carts query,
# then the items of batches of 2,000 carts, as recart reads them). On a
# machine whose cores the server shares with recart, the first import
# cannot take less than this CPU over the number of cores.
"$BIN" sources show-preset magento2 > "$WORK/preset.toml"
python3 - "$WORK/preset.toml" "$N" > "$WORK/preset.sql" <<'PY'
import sys, tomllib
source = tomllib.load(open(sys.argv[1], "rb"))["sources"][0]
print("SET time_zone = '+00:00'; SET SESSION in_predicate_conversion_threshold = 0;")
print(source["carts_query"].replace(":since", "NULL").strip() + ";")
quotes, batch = int(sys.argv[2]), 2000
for first in range(1, quotes + 1, batch):
    ids = ",".join(str(i) for i in range(first, min(first + batch, quotes + 1)))
    print(source["items_query"].replace(":cart_ids", ids).strip() + ";")
PY
measure "the server alone: the preset's queries into /dev/null" 0 \
    sh -c "mariadb -h 127.0.0.1 -P $PORT -u root magento < $WORK/preset.sql"
cd "$WORK/db"
measure "recart run, first import from MariaDB" "$N" "$BIN" run --quiet --now "$NOW"
measure "recart run, idle (nothing changed)" 0 "$BIN" run --quiet --now "$NOW"
# The anchor: the same rows as native CSV, exported by the server, then
# recart import.
config "$WORK/csv" "path = \"carts.csv\""
HEADER=cart_id,email,first_name,locale,currency,status,accepts_marketing,created_at,updated_at,sku,product_name,category,quantity,unit_price,image_url,product_url
JOIN="SELECT q.entity_id, q.customer_email, q.customer_firstname, '' AS locale,
       q.quote_currency_code, 'open' AS status, 1 AS accepts_marketing,
       DATE_FORMAT(q.created_at, '%Y-%m-%dT%H:%i:%sZ') AS created_at,
       DATE_FORMAT(q.updated_at, '%Y-%m-%dT%H:%i:%sZ') AS updated_at, i.sku, i.name,
       '' AS category, CAST(i.qty AS UNSIGNED) AS qty, i.price, '' AS image_url,
       '' AS product_url
FROM quote q JOIN quote_item i ON i.quote_id = q.entity_id"
now() { date +%s.%N; }
cd "$WORK/csv"
SERVER_BEFORE=$(server_cpu)
START=$(now)
if command -v mysqldump > /dev/null; then
    HOW="mysqldump --tab"
    sql magento -e "SET time_zone = '+00:00'; CREATE TABLE recart_export AS $JOIN"
    JOINED=$(now)
    mysqldump -h 127.0.0.1 -P "$PORT" -u root --tab="$WORK/dump" \
        --fields-terminated-by=, --fields-optionally-enclosed-by='"' \
        --lines-terminated-by='\n' magento recart_export
    DUMPED="$WORK/dump/recart_export.txt"
else
    HOW="SELECT ... INTO OUTFILE"
    JOINED=$START
    sql magento -e "SET time_zone = '+00:00'; $JOIN
INTO OUTFILE '$WORK/dump/carts.csv' FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"'
LINES TERMINATED BY '\n'"
    DUMPED="$WORK/dump/carts.csv"
fi
{ echo "$HEADER"; cat "$DUMPED"; } > carts.csv
rm "$DUMPED"
EXPORTED=$(now)
SERVER_EXPORT=$(echo "scale=2; ($(server_cpu) - $SERVER_BEFORE) / 100" | bc)
measure "recart import of that CSV" "$N" "$BIN" import --now "$NOW" carts.csv
END=$(now)
echo "$HOW then recart import: $(echo "$END - $START" | bc) s in all \
(join $(echo "$JOINED - $START" | bc) s, export $(echo "$EXPORTED - $JOINED" | bc) s, \
the server's CPU $SERVER_EXPORT s), \
$(echo "$N / ($END - $START)" | bc) carts/s"
