#!/bin/sh
# Benchmark (not a test): how many recovery redirects per second does
# `recart serve` answer, and how fast? Imports CARTS carts into a fresh
# store, starts `recart serve` on a free loopback port, and clicks their
# `/r/{token}` links with examples/serve_load.rs (keep-alive, THREADS
# threads) — each a token check, a cart lookup, a click written to the
# store, a 302 and an access-log line — until REQUESTS requests or SECONDS
# seconds, whichever comes first. Loopback only.
#
#   benches/serve.sh [REQUESTS]
#     CARTS    env, default 1000
#     THREADS  env, default 4
#     SECONDS  env, default 30
set -eu
REQUESTS=${1:-20000}
CARTS=${CARTS:-1000}
THREADS=${THREADS:-4}
SECONDS_MAX=${SECONDS:-30}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/recart-serve.XXXXXX")
SERVER=
cleanup() {
    if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin recart --example serve_load
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
BIN=$TARGET/recart

"$BIN" init "$WORK/shop" > /dev/null 2>&1
cd "$WORK/shop"
export RECART_SECRET=bench-secret-key
# The mails' links at recart serve; the cart page it redirects to.
sed -i -e 's|^recover = .*|base = "https://mail.shop.example"|' \
       -e 's|^unsubscribe = .*|cart = "https://shop.example/abandoned-cart/{cart_id}"|' recart.toml
awk -v n="$CARTS" 'BEGIN {
    print "cart_id,email,first_name,locale,currency,status,accepts_marketing,created_at,updated_at,sku,product_name,category,quantity,unit_price,image_url,product_url"
    for (i = 0; i < n; i++)
        printf "F-%05d,f%05d@example.com,Cust%d,en-GB,EUR,open,true,2026-11-21T09:00:00Z,2026-11-21T10:00:00Z,SKU-%d,Thing %d,Stuff,1,12.50,https://cdn.shop.example/img/%d.jpg,https://shop.example/products/%d\n", i, i, i, i, i, i, i
}' > load.csv
"$BIN" import --now 2026-11-21T12:00:00Z load.csv > /dev/null 2>&1

"$BIN" serve --listen 127.0.0.1:0 > serve.out 2> access.log &
SERVER=$!
for _ in $(seq 100); do
    grep -q '^listening on ' serve.out 2>/dev/null && break
    sleep 0.1
done
URL=$(sed -n 's/^listening on //p' serve.out)
[ -n "$URL" ] || { echo "$0: recart serve did not start" >&2; cat access.log >&2; exit 1; }

echo "recart serve at $URL: $CARTS carts, $THREADS client threads, at most $REQUESTS requests or ${SECONDS_MAX} s"
"$TARGET/examples/serve_load" --url "$URL" --key "$RECART_SECRET" --carts "$CARTS" \
    --requests "$REQUESTS" --seconds "$SECONDS_MAX" --threads "$THREADS"
kill -TERM "$SERVER"
wait "$SERVER" || true
SERVER=
echo "access log: $(grep -c '^GET /r/… 302' access.log) redirects logged"
