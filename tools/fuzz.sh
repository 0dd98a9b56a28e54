#!/usr/bin/env bash
# Fuzzing kaswatch with cargo-fuzz on a stable toolchain (RUSTC_BOOTSTRAP=1).
#
#   tools/fuzz.sh build                 build every target
#   tools/fuzz.sh run   [TARGET...]     each target for FUZZ_SECONDS (default 60), in sequence
#   tools/fuzz.sh smoke [TARGET...]     each target for FUZZ_SMOKE_SECONDS (default 20): CI / make test
#   tools/fuzz.sh seed                  rebuild fuzz/corpus/* from captures/ and ../shared/captures-public, minimised
#   tools/fuzz.sh merge [TARGET...]     fold what fuzzing found (fuzz/target/corpus-work) into fuzz/corpus, minimised
#   tools/fuzz.sh regressions           run every saved crash fixture (fuzz/regressions/*) once
#   tools/fuzz.sh list                  target names
#
# Exits non-zero when any target crashes, times out or exceeds its memory
# limit; the failing input is copied to fuzz/artifacts/<target>/ and printed.
# New corpus entries found while fuzzing go to fuzz/target/corpus-work/ (not
# committed); fuzz/corpus/ is read only. Each run's executions are printed
# and appended to fuzz/target/fuzz-stats.tsv.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
TARGETS=(packet dns tls quic http pcap_file signatures inventory)
export RUSTC_BOOTSTRAP=1
# Safe Rust only on these paths: no sanitizer (2-3x the executions), with
# overflow checks and debug assertions on (-a) so arithmetic overflow panics.
BUILD_FLAGS=(--sanitizer none --debug-assertions --release)
PUBLIC=${KASWATCH_PUBLIC_CAPTURES:-$ROOT/../shared/captures-public}
[ -d "$PUBLIC" ] || PUBLIC=/work/shared/captures-public

max_len() {
    case $1 in
        packet | pcap_file) echo 32768 ;;
        tls | quic) echo 20000 ;;
        signatures) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

need_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "fuzz: cargo-fuzz missing; installing it from crates.io (cargo install cargo-fuzz --locked)" >&2
        cargo install cargo-fuzz --locked >&2
    fi
}

build() {
    need_cargo_fuzz
    cargo fuzz build "${BUILD_FLAGS[@]}" "$@"
}

check_targets() {
    for t in "$@"; do
        [[ " ${TARGETS[*]} " == *" $t "* ]] || {
            echo "fuzz: unknown target $t (one of: ${TARGETS[*]})" >&2
            exit 2
        }
    done
}

# run_for SECONDS TARGET...
run_for() {
    local secs=$1
    shift
    local targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=("${TARGETS[@]}")
    check_targets "${targets[@]}"
    local failed=() stats=fuzz/target/fuzz-stats.tsv
    mkdir -p fuzz/target
    if ! build >fuzz/target/build.log 2>&1; then
        tail -30 fuzz/target/build.log >&2
        echo "fuzz: build failed; see fuzz/target/build.log" >&2
        return 1
    fi
    for t in "${targets[@]}"; do
        local work=fuzz/target/corpus-work/$t log=fuzz/target/fuzz-$t.log
        mkdir -p "$work" "fuzz/artifacts/$t" "fuzz/corpus/$t" "fuzz/regressions/$t"
        echo "fuzz: $t for ${secs}s" >&2
        local rc=0
        cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "$work" "fuzz/corpus/$t" "fuzz/regressions/$t" -- \
            -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$ROOT/fuzz/artifacts/$t/" >"$log" 2>&1 || rc=$?
        local execs secs_run
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        secs_run=$(grep -o 'exec/s: [0-9]*' "$log" | tail -1 | sed 's/.*: //')
        printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$secs" "${execs:-?}" "$([ $rc = 0 ] && echo ok || echo FAIL)" >>"$stats"
        if [ "$rc" != 0 ]; then
            failed+=("$t")
            echo "fuzz: $t FAILED (exit $rc) after ${execs:-?} executions; log $log" >&2
            grep -E '^(==|thread|SUMMARY|artifact_prefix|Test unit written)|panicked' "$log" | head -20 >&2 || true
        else
            echo "fuzz: $t ok, ${execs:-?} executions (${secs_run:-?} exec/s at the end)" >&2
        fi
    done
    if [ ${#failed[@]} -gt 0 ]; then
        echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
        return 1
    fi
}

seed() {
    local raw
    raw=$(mktemp -d)
    trap 'rm -rf "$raw"' RETURN
    local caps=(captures)
    if [ -d "$PUBLIC" ]; then caps+=("$PUBLIC"); else echo "fuzz: $PUBLIC missing; seeding from captures/ only" >&2; fi
    python3 fuzz/seed.py "$raw" "${caps[@]}"
    build
    for t in "${TARGETS[@]}"; do
        rm -rf "fuzz/corpus/$t"
        mkdir -p "fuzz/corpus/$t"
        [ -d "$raw/$t" ] || continue
        # Merge into the empty committed dir: keeps a minimal covering set.
        cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "fuzz/corpus/$t" "$raw/$t" -- \
            -merge=1 -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 >"fuzz/target/cmin-$t.log" 2>&1 || {
            echo "fuzz: minimising $t failed; see fuzz/target/cmin-$t.log" >&2
            return 1
        }
        echo "fuzz: $t: $(ls "$raw/$t" | wc -l) seeds -> $(ls "fuzz/corpus/$t" | wc -l) ($(du -sh "fuzz/corpus/$t" | cut -f1))" >&2
    done
}

# Re-minimise fuzz/corpus/<t> together with fuzz/target/corpus-work/<t>.
merge() {
    local targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=("${TARGETS[@]}")
    check_targets "${targets[@]}"
    build
    for t in "${targets[@]}"; do
        local new=fuzz/target/corpus-merge/$t
        rm -rf "$new"
        mkdir -p "$new" "fuzz/target/corpus-work/$t"
        cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "$new" "fuzz/corpus/$t" "fuzz/target/corpus-work/$t" -- \
            -merge=1 -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 >"fuzz/target/merge-$t.log" 2>&1 || {
            echo "fuzz: merging $t failed; see fuzz/target/merge-$t.log" >&2
            return 1
        }
        rm -rf "fuzz/corpus/$t"
        mv "$new" "fuzz/corpus/$t"
        echo "fuzz: $t: $(ls "fuzz/corpus/$t" | wc -l) files ($(du -sh --apparent-size "fuzz/corpus/$t" | cut -f1))" >&2
    done
}

regressions() {
    build
    local failed=0
    for t in "${TARGETS[@]}"; do
        local d=fuzz/regressions/$t
        [ -d "$d" ] && [ -n "$(ls -A "$d")" ] || continue
        cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "$d" -- -runs=0 -max_len=1048576 >"fuzz/target/regress-$t.log" 2>&1 || {
            echo "fuzz: regression input of $t fails; see fuzz/target/regress-$t.log" >&2
            failed=1
        }
    done
    return $failed
}

cmd=${1:-run}
shift || true
case $cmd in
    build) build "$@" ;;
    run) run_for "${FUZZ_SECONDS:-60}" "$@" ;;
    smoke) run_for "${FUZZ_SMOKE_SECONDS:-20}" "$@" ;;
    seed) seed ;;
    merge) merge "$@" ;;
    regressions) regressions ;;
    list) printf '%s\n' "${TARGETS[@]}" ;;
    *)
        sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
