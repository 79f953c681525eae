#!/usr/bin/env bash
# Two "nodes" on one machine: separate torchrun process groups (--nnodes 2, a static loopback rendezvous), 1 rank x
# 2 DataLoader workers each, batches of 16 built in the dataset, reading ROOT through one loopback HTTP server
# (50 ms first byte, 100 MB/s per response). With LIMIT (bytes) each node has its own cache of that bound and
# `bench` records two whole epochs; with LIMIT=local the nodes read ROOT from local disk, BATCHES batches each.
#
#   benchmarks/cache/nodes.sh ROOT LIMIT|local OUT [BATCHES]
set -euo pipefail
ROOT=$1 LIMIT=$2 OUT=$3 BATCHES=${4:-50}
PY=${PY:-.venv/bin/python}
port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
SERVE=$(port) RDZV=$(port)
mkdir -p "$OUT"
"$PY" -m lerobot_wds.testing.http_server "$ROOT" --port "$SERVE" --latency-ms 50 --bandwidth-mb-s 100 &
SERVER=$!
trap 'kill $SERVER' EXIT
sleep 2
pids=()
for node in 0 1; do
  if [ "$LIMIT" = local ]; then
    args=("$ROOT" --num-batches "$BATCHES" --source-label local)
  else
    rm -rf "$OUT/cache-$node"
    args=("http://127.0.0.1:$SERVE" --cache-dir "$OUT/cache-$node" --cache-limit "$LIMIT" --source-label "http-50ms-100MBs")
  fi
  OMP_NUM_THREADS=1 "$PY" -m torch.distributed.run --nnodes 2 --nproc-per-node 1 --node-rank "$node" \
    --master-addr 127.0.0.1 --master-port "$RDZV" -m lerobot_wds.tools.cli bench "${args[@]}" \
    --num-workers 2 --batch-size 16 --warmup 5 --out "$OUT/records" > "$OUT/node$node.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
