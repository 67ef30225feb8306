#!/usr/bin/env bash
# Call-rate load on loopback: voxnav serve on 127.0.0.1, SIPp's uac scenario at RATE calls/s
# for CALLS calls of HOLD ms each with RTP both ways (-rtp_echo). Bounded in count and time.
#   sip-test/load.sh [RATE=50] [CALLS=1000] [HOLD_MS=1000]
# Prints SIPp's totals and the server's CPU time and peak memory.
set -euo pipefail
rate=${1:-50} calls=${2:-1000} hold=${3:-1000}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$here/target/release/voxnav
port=$((20000 + RANDOM % 10000))
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" serve --sip-listen "127.0.0.1:$port" --max-calls 2000 > "$work/server.log" 2>&1 &
server=$!
sleep 0.5
start=$(date +%s.%N)
set +e
timeout $((calls / rate + hold / 1000 + 60)) sipp -sn uac -i 127.0.0.1 -p $((port + 1)) -mp $((port + 2)) \
    -r "$rate" -m "$calls" -d "$hold" -rtp_echo -timeout $((calls / rate + 30)) -timeout_error \
    -nostdin -buff_size 4194304 -recv_timeout 10000 -trace_stat -stf "$work/stat.csv" -fd 1 \
    "127.0.0.1:$port" > "$work/sipp.out" 2>&1
sipp_exit=$?
set -e
end=$(date +%s.%N)
python3 - "$work/stat.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
head, last = rows[0], rows[-1]
get = lambda k: last[head.index(k)]
print(f"sipp: created {get('TotalCallCreated')} ok {get('SuccessfulCall(C)')} failed {get('FailedCall(C)')} "
      f"retransmissions {get('Retransmissions(C)')}")
PY
ticks=$(getconf CLK_TCK)
read -r utime stime < <(awk '{print $14, $15}' "/proc/$server/stat")
peak=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
elapsed=$(python3 -c "print(f'{$end - $start:.1f}')")
echo "server: cpu $(( (utime + stime) * 1000 / ticks )) ms over $elapsed s, peak RSS $((peak / 1024)) MB"
echo "server: media reports $(grep -c 'voxnav: media' "$work/server.log"), with RTP received $(grep 'voxnav: media' "$work/server.log" | grep -vc ' received 0 foreign')"
echo "sipp exit status: $sipp_exit"
exit "$sipp_exit"
