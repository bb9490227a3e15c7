#!/bin/bash
# bench/ir_compare.sh BIN LABEL — user-space instructions (callgrind Ir) the
# server spends per unit of work, for echo 32 B (per message), broadcast to
# 500 members (per delivery) and connect+handshake+close (per cycle). Counts,
# not seconds: repeatable on a loaded machine. Build BIN with
# `make build/wsedge CFLAGS="-O2 -gdwarf-4"` (valgrind 3.19 reads DWARF 4);
# the load generator is build/bench/loadgen (bench/setup builds it).
set -u
BIN=$1; L=$2; LG=${LOADGEN:-build/bench/loadgen}
run() { # scen port-args... ; unit-field
  local name=$1; shift; local field=$1; shift
  local P=$((20000 + RANDOM % 20000))
  valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$L.$name $BIN serve --listen 127.0.0.1:$P --threads 1 --log-level error 2>/dev/null &
  local VP=$!
  for i in $(seq 1 60); do curl -s -o /dev/null http://127.0.0.1:$P/healthz && break; sleep 0.5; done
  $LG "$@" --url ws://127.0.0.1:$P$URLPATH >/dev/null 2>&1
  local units=$(curl -s http://127.0.0.1:$P/stats | python3 -c "import sys,json;print(json.load(sys.stdin)['$field'])")
  kill -TERM $VP; wait $VP 2>/dev/null
  local ir=$(callgrind_annotate /tmp/cg.$L.$name 2>/dev/null | grep -m1 "PROGRAM TOTALS" | awk '{gsub(",","",$1); print $1}')
  echo "$L $name Ir=$ir units=$units per_unit=$(python3 -c "print(round($ir/$units))")"
}
URLPATH=/ws run echo messages_in echo --conns 100 --inflight 16 --size 32 --duration 3 --warmup 1
URLPATH=/chat/b run broadcast messages_out broadcast --conns 500 --senders 2 --window 32 --duration 3
URLPATH=/ws run connect connections_total connect --concurrency 50 --duration 3
