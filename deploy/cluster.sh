#!/usr/bin/env bash
# The multi-node demo on one machine: NODES voxnav nodes (default 3) on 127.0.0.2, .3, ...,
# each answering the demo hotline, behind Kamailio on LISTEN (default 127.0.0.1:5060), which
# spreads calls over them and probes them (deploy/kamailio/kamailio.cfg). Ctrl-C stops all.
#
# Call it like the single server: target/release/voxnav call sip:hotline@127.0.0.1:5060 --script
# sip-test/calls/order-status.yaml. Each node's admin API and dashboard are on 127.0.0.N:8081
# (token in records/admin-token); each shows every node's live calls (--peer) and everyone's
# records, kept in one PostgreSQL (records/pgdata, or /var/tmp/voxnav-cluster-pgdata as root;
# on 127.0.0.1:$PGPORT, default 5433; started here and stopped with the rest). Drain one for
# an upgrade:
#   curl -X POST -H "Authorization: Bearer $(cat records/admin-token)" http://127.0.0.3:8081/api/drain
#
# On one machine the nodes share its cores: this shows the wiring, not the capacity. On several
# machines, run `voxnav serve` on each and list them in the dispatcher list (docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-3}
LISTEN=${LISTEN:-127.0.0.1:5060}
PGPORT=${PGPORT:-5433}
BIN=target/release/voxnav
run_dir=$(mktemp -d)
mkdir -p records && chmod 700 records
[ -s records/admin-token ] || (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > records/admin-token)

# PostgreSQL for everyone's records: Debian keeps the server programs off the PATH, and it
# refuses to run as root (then it runs as the `postgres` user the package made).
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL is not installed: scripts/install-deps.sh --cluster" >&2; exit 1; }
as_pg=()
pgdata=$PWD/records/pgdata
if [ "$(id -u)" -eq 0 ]; then
    # The server's user cannot enter records/ (root's, mode 700): its data lives outside.
    as_pg=(runuser -u postgres --)
    pgdata=/var/tmp/voxnav-cluster-pgdata
fi
if [ ! -s "$pgdata/PG_VERSION" ]; then
    mkdir -p "$pgdata"
    [ ${#as_pg[@]} -eq 0 ] || chown postgres: "$pgdata"
    "${as_pg[@]}" "$pg_bin/initdb" -D "$pgdata" -U voxnav -A trust -E UTF8 >/dev/null
fi
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w \
    -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $pgdata" start >/dev/null
stop_all() {
    [ -s "$run_dir/kamailio.pid" ] && kill "$(cat "$run_dir/kamailio.pid")" 2>/dev/null
    kill $(jobs -p) 2>/dev/null
    wait
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pgdata" -m fast stop >/dev/null
    rm -rf "$run_dir"
}
trap stop_all EXIT
# A signal to this script alone (not Ctrl-C to the whole group) stops everything too.
trap 'exit 130' INT TERM
"$pg_bin/createdb" -h 127.0.0.1 -p "$PGPORT" -U voxnav voxnav 2>/dev/null || true
records_url="postgres://voxnav@127.0.0.1:$PGPORT/voxnav"

list="$run_dir/dispatcher.list"
peers=()
for i in $(seq 1 "$NODES"); do peers+=(--peer "http://127.0.0.$((i + 1)):8081"); done
for i in $(seq 1 "$NODES"); do
    ip="127.0.0.$((i + 1))"
    echo "1 sip:$ip:5060" >> "$list"
    others=()
    for ((k = 0; k < ${#peers[@]}; k += 2)); do
        [ "${peers[k + 1]}" = "http://$ip:8081" ] || others+=("${peers[k]}" "${peers[k + 1]}")
    done
    VOXNAV_ADMIN_TOKEN=$(cat records/admin-token) "$BIN" serve --sip-listen "$ip:5060" \
        --dialplan dialplans/hotline.yaml --demo-orders --asr-jobs 1 \
        --rtp-ports "$((20000 + i * 1000))-$((20998 + i * 1000))" \
        --admin-listen "$ip:8081" --records "$records_url" --server-name "node-$i" "${others[@]}" \
        2> "records/node-$i.log" | sed -u "s/^/node $i: /" &
done
# Its log goes through a pipe, not a process substitution: that would make the filter
# Kamailio's child, and Kamailio waits for all its children when it stops (a deadlock).
kamailio -f deploy/kamailio/kamailio.cfg -DD -E -m 64 -M 8 -Y "$run_dir" -P "$run_dir/kamailio.pid" \
    -A "LISTEN=udp:$LISTEN" -A "DISPATCHER_LIST=\"$list\"" 2>&1 >/dev/null | grep --line-buffered -v ' INFO: ' >&2 &
echo "voxnav cluster: Kamailio on $LISTEN in front of $NODES nodes (logs in records/node-N.log)"
wait
