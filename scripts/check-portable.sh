#!/usr/bin/env bash
# Fails if the binary contains AVX-512 instructions (zmm registers): whisper.cpp's default
# -march=native build would, on this AVX-512 build machine, and die with SIGILL on a plain AVX2
# x86-64. .cargo/config.toml pins the AVX2 baseline; this proves it took effect.
set -euo pipefail
bin=${1:-target/release/voxnav}
count=$(objdump -d --no-show-raw-insn "$bin" | grep -c '%zmm' || true)
if [ "$count" -ne 0 ]; then
    echo "check-portable: $bin has $count AVX-512 instructions; run cargo clean -p whisper-rs-sys and rebuild" >&2
    exit 1
fi
echo "check-portable: $bin uses no AVX-512 instructions"
