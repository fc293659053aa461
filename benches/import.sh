#!/bin/sh
# Benchmark (not a test): N Shopify checkouts imported by recart versus
# sqlite3's own `.import` of the same file. Prints rows/s and peak RSS.
#   benches/import.sh [N]        (default 250000: ~562,000 rows, ~152 MB)
set -eu
N=${1:-250000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/recart
python3 "$ROOT/benches/gen_shopify.py" "$N" > "$WORK/checkouts.csv"
ROWS=$(($(wc -l < "$WORK/checkouts.csv") - 1))
SIZE=$(du -m "$WORK/checkouts.csv" | cut -f1)
cat > "$WORK/recart.toml" <<TOML
[links]
recover = "https://shop.example/r/{token}"
unsubscribe = "https://shop.example/u/{token}"
secret_env = "RECART_SECRET"
[[steps]]
name = "1h"
after = "1h"
template = "reminder"
TOML
# Wall time, and CPU time (user + sys): on a shared machine the wall time
# also counts waiting for a core. recart's CPU time counts its two threads
# (reader and store), so it exceeds its wall time on an idle machine.
measure() { # label, command...
    label=$1; shift
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" > /dev/null
    read -r secs user sys kb < "$WORK/time"
    cpu=$(echo "$user + $sys" | bc)
    echo "$label: $secs s (CPU $cpu s), $(echo "$ROWS / $secs" | bc) rows/s, peak RSS $((kb / 1024)) MB"
}
echo "$N checkouts, $ROWS rows, $SIZE MB"
measure "recart import (first)" "$BIN" --config "$WORK/recart.toml" import --format shopify "$WORK/checkouts.csv"
measure "recart import (again, unchanged)" "$BIN" --config "$WORK/recart.toml" import --format shopify "$WORK/checkouts.csv"
measure "sqlite3 .import" sqlite3 "$WORK/sqlite.db" -cmd '.mode csv' ".import $WORK/checkouts.csv t"
