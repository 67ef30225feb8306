#!/usr/bin/env bash
# The multi-node demo on one machine: NODES voxnav nodes (default 3) on 127.0.0.2, .3, ...,
# each answering the demo hotline, behind Kamailio on LISTEN (default 127.0.0.1:5060), which
# spreads calls over them and probes them (deploy/kamailio/kamailio.cfg). Ctrl-C stops all.
#
# Call it like the single server: target/release/voxnav call sip:hotline@127.0.0.1:5060 --script
# sip-test/calls/order-status.yaml. Each node's admin API and dashboard are on 127.0.0.N:8081
# (token in records/admin-token); its records in records/node-N.db. Drain one for an upgrade:
#   curl -X POST -H "Authorization: Bearer $(cat records/admin-token)" http://127.0.0.3:8081/api/drain
#
# On one machine the nodes share its cores: this shows the wiring, not the capacity. On several
# machines, run `voxnav serve` on each and list them in the dispatcher list (docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-3}
LISTEN=${LISTEN:-127.0.0.1:5060}
BIN=target/release/voxnav
run_dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$run_dir"' EXIT
mkdir -p records && chmod 700 records
[ -s records/admin-token ] || (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > records/admin-token)
list="$run_dir/dispatcher.list"
for i in $(seq 1 "$NODES"); do
    ip="127.0.0.$((i + 1))"
    echo "1 sip:$ip:5060" >> "$list"
    VOXNAV_ADMIN_TOKEN=$(cat records/admin-token) "$BIN" serve --sip-listen "$ip:5060" \
        --dialplan dialplans/hotline.yaml --demo-orders --asr-jobs 1 \
        --rtp-ports "$((20000 + i * 1000))-$((20998 + i * 1000))" \
        --admin-listen "$ip:8081" --records "records/node-$i.db" \
        2> "records/node-$i.log" | sed -u "s/^/node $i: /" &
done
kamailio -f deploy/kamailio/kamailio.cfg -DD -E -m 64 -M 8 -Y "$run_dir" -P "$run_dir/kamailio.pid" \
    -A "LISTEN=udp:$LISTEN" -A "DISPATCHER_LIST=\"$list\"" 2> >(grep --line-buffered -v ' INFO: ' >&2) &
echo "voxnav cluster: Kamailio on $LISTEN in front of $NODES nodes (logs in records/node-N.log)"
wait
