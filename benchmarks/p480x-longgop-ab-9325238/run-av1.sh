#!/bin/bash
# lerobot's AV1 GOP 2 at 480x640: the reader of b3b3777 (head) and of the working tree (new), interleaved
set -uo pipefail
cd /tmp
PY=/work/main/.venv312/bin/python
D=/work/data/p480x; O=/work/data/p480x/ab-9325238
for round in 1 2; do
for who in head new; do
  pp=""; [ $who = head ] && pp=/work/head-pkg
  echo "$(date +%T) av1 $who round $round load $(cut -d' ' -f1-3 /proc/loadavg)"
  PYTHONPATH=$pp $PY -m lerobot_wds.tools.cli bench $D/wds --mode single window8x1s sarm --batching dataset \
    --lerobot-root $D/src --source-label p480-av1-$who --num-batches 40 --warmup 3 --batch-size 16 --num-workers 2 \
    --return-uint8 --out $O/av1-$who > $O/av1-$who-r$round.log 2>&1
  echo "rc=$?"; grep "frames/s=" $O/av1-$who-r$round.log
done
done
echo "$(date +%T) done"
