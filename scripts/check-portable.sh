#!/usr/bin/env bash
# Fails if the binary contains AVX-512 instructions (zmm registers) outside functions that are
# explicitly AVX-512 variants chosen at run time by CPU feature detection (such as crc32fast's
# `calculate_avx512`). whisper.cpp's default -march=native build would put AVX-512 code in plain
# ggml functions on this AVX-512 build machine, and die with SIGILL on a plain AVX2 x86-64.
# .cargo/config.toml pins the AVX2 baseline; this proves it took effect.
set -euo pipefail
bin=${1:-target/release/voxnav}
offenders=$(objdump -d --no-show-raw-insn "$bin" |
    awk '/^[0-9a-f]+ <.*>:$/ { fn = $2 } /%zmm/ && tolower(fn) !~ /avx512/ { print fn }' |
    sort | uniq -c)
if [ -n "$offenders" ]; then
    echo "check-portable: $bin has AVX-512 instructions in:" >&2
    echo "$offenders" | head -20 >&2
    echo "run: cargo clean -p whisper-rs-sys && cargo build --release" >&2
    exit 1
fi
echo "check-portable: $bin has no unconditional AVX-512 code"
