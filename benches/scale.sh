#!/bin/sh
# Benchmark (not a test): does the hourly run stay cheap as the store grows?
# Builds stores with examples/gen_store.rs (the real schema, via
# Store::open) and times `recart run --dry-run`:
#   idle  nothing is due (the background is as hourly runs left it)
#   due   DUE carts are due their first reminder (plan + render, with
#         the address checked; a dry run builds no MIME and hands the
#         mails to nothing)
# with peak RSS of each, at 100,000 and N (1,000,000) stored carts, and
# 10,000,000 with --huge. Prints a table and the growth between sizes.
#
#   benches/scale.sh [--quick] [--huge] [N]
#     --quick   N = 20,000, DUE = 2,000, no growth row (CI: checks that
#               the idle run plans nothing and the due run plans DUE sends)
#     --huge    also 10,000,000 carts (~12 GB of disk, ~10 minutes per store)
#     DUE       env, default 100000 (2000 with --quick)
set -eu
QUICK=0
HUGE=0
N=1000000
for arg in "$@"; do
    case $arg in
        --quick) QUICK=1 ;;
        --huge) HUGE=1 ;;
        -*) echo "usage: $0 [--quick] [--huge] [N]" >&2; exit 2 ;;
        *) N=$arg ;;
    esac
done
if [ "$QUICK" = 1 ]; then
    SIZES=20000
    DUE=${DUE:-2000}
else
    SIZES="100000 $N"
    [ "$HUGE" = 1 ] && SIZES="$SIZES 10000000"
    DUE=${DUE:-100000}
fi
NOW=2026-11-21T12:00:00Z
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/recart-scale.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
if [ "$QUICK" = 1 ]; then PROFILE=debug; else PROFILE=release; fi
if [ "$PROFILE" = release ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin recart --example gen_store
else
    cargo build --quiet --manifest-path "$ROOT/Cargo.toml" --bin recart --example gen_store
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE
BIN=$TARGET/recart
GEN=$TARGET/examples/gen_store
TIME=/usr/bin/time
if [ ! -x "$TIME" ]; then
    echo "$0: needs GNU time (apt-get install time)" >&2
    exit 1
fi

# The starter config and templates, as `recart init` writes them.
"$BIN" init "$WORK/shop" > /dev/null 2>&1
export RECART_SECRET=bench-secret-key
CONFIG=$WORK/shop/recart.toml
# No sources: the run plans over the generated store only, whose carts
# are older than init's `not_before`.
sed -i '/^\[\[sources\]\]/,/^format/d; /^not_before = /d' "$CONFIG"

# run LABEL STORE_DIR → "seconds kb sends skips"
run() {
    "$TIME" -f "%e %M" -o "$WORK/time" "$BIN" --config "$CONFIG" run --dry-run --json --now "$NOW" \
        > "$WORK/out.jsonl" 2> "$WORK/err"
    read -r secs kb < "$WORK/time"
    sends=$(grep -c '"decision":"send"' "$WORK/out.jsonl" || true)
    skips=$(grep -c '"decision":"skip"' "$WORK/out.jsonl" || true)
    echo "$secs $kb $sends $skips"
}

printf '%s cores, %s\n' "$(nproc)" "$(uname -m)"
printf '%-11s %-6s %8s %9s %9s %10s %9s\n' carts case seconds "peak MB" sends skips "mails/s"
RESULTS=$WORK/results
: > "$RESULTS"
for size in $SIZES; do
    for case in idle due; do
        store=$WORK/shop/recart.db
        rm -f "$store" "$store-wal" "$store-shm"
        if [ "$case" = idle ]; then due=0; else due=$DUE; fi
        # One shop, one activity rate (~2,740 carts a day): a bigger store
        # is a longer history, so the hourly window holds the same carts.
        days=$((size * 365 / 1000000)); [ "$days" -ge 1 ] || days=1
        "$GEN" --carts "$size" --due "$due" --days "$days" --now "$NOW" --out "$store" 2> /dev/null
        # Warm the page cache once, as an hourly run on a busy host would find it.
        cat "$store" > /dev/null
        set -- $(run)
        secs=$1 kb=$2 sends=$3 skips=$4
        rate=-
        if [ "$case" = due ]; then rate=$(echo "$sends / $secs" | bc); fi
        printf '%-11s %-6s %8s %9s %9s %10s %9s\n' "$size" "$case" "$secs" "$((kb / 1024))" "$sends" "$skips" "$rate"
        echo "$size $case $secs $kb $sends" >> "$RESULTS"
        if [ "$case" = idle ] && [ "$sends" != 0 ]; then
            echo "$0: idle run planned $sends sends" >&2; exit 1
        fi
        if [ "$case" = due ] && [ "$sends" != "$due" ]; then
            echo "$0: due run planned $sends sends, expected $due" >&2; exit 1
        fi
    done
done
rm -f "$WORK/shop/recart.db"*

# Growth: each size against the first, per case.
if [ "$QUICK" = 0 ]; then
    echo
    echo "growth against $(echo $SIZES | cut -d' ' -f1) carts (stored carts ×k → time ×t):"
    for case in idle due; do
        base=$(awk -v c="$case" '$2 == c { print $1, $3; exit }' "$RESULTS")
        set -- $base
        awk -v c="$case" -v n0="$1" -v t0="$2" \
            '$2 == c && $1 != n0 { printf "  %-4s ×%-5d → time ×%.2f\n", c, $1 / n0, $3 / t0 }' "$RESULTS"
    done
fi
