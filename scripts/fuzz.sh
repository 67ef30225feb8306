#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 20) each, seeded with the RFC 4475 torture
# messages (SIP) and fuzz/seeds/ (SDP, RTP). Bounded in time; exits non-zero on any crash, whose
# input is left in fuzz/artifacts/<target>/ (turn it into a regression test).
# The toolchain here is stable, so no AddressSanitizer (-s none): the targets are safe Rust and
# the findings are panics and failed assertions, which libFuzzer catches without it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
torture=../shared/data/sip-torture-rfc4475
cargo fuzz build -O -s none
for target in sip_datagram sip_stream sdp rtp; do
    corpus=fuzz/corpus/$target
    mkdir -p "$corpus"
    case $target in
        sip_*) seeds=$torture ;;
        *) seeds=fuzz/seeds/$target ;;
    esac
    echo "fuzz: $target for ${seconds}s"
    cargo fuzz run -O -s none "$target" "$corpus" "$seeds" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
        grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)|panicked|ERROR|SUMMARY" || true
    if compgen -G "fuzz/artifacts/$target/crash-*" >/dev/null; then
        echo "fuzz: $target crashed; inputs in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "fuzz: no crashes"
