#!/bin/bash
# 480x640 long GOP: the reader of b3b3777 (head) and of the working tree (new), interleaved, lerobot's environment
set -uo pipefail
cd /tmp
PY=/work/main/.venv312/bin/python
D=/work/data/p480x; O=${O:-/work/data/p480x/ab-$(git -C /work/main rev-parse --short HEAD)}
mkdir -p $O
for round in 1 2; do
  for who in head new; do
    pp=""; [ $who = head ] && pp=/work/head-pkg
    for prof in g250 g250nc; do
      echo "$(date +%T) $prof $who round $round load $(cut -d' ' -f1-3 /proc/loadavg)"
      PYTHONPATH=$pp $PY -m lerobot_wds.tools.cli bench $D/$prof/wds --mode single window8x1s sarm --batching dataset \
        --lerobot-root $D/$prof/src --source-label p480-$prof-$who --num-batches 40 --warmup 3 --batch-size 16 --num-workers 2 \
        --return-uint8 --out $O/$prof-$who > $O/$prof-$who-r$round.log 2>&1
      echo "rc=$?"; grep "frames/s=" $O/$prof-$who-r$round.log
    done
  done
done
echo "$(date +%T) g250 LeRobotDataset window8x1s load $(cut -d' ' -f1-3 /proc/loadavg)"
timeout 600 $PY -m lerobot_wds.tools.cli bench $D/g250/wds --mode window8x1s --baseline lerobot --baseline-only \
  --lerobot-root $D/g250/src --source-label p480-g250 --num-batches 3 --warmup 1 \
  --batch-size 16 --num-workers 2 --return-uint8 --out $O/g250-lerobot > $O/g250-lerobot.log 2>&1
echo "rc=$?"; grep "frames/s=" $O/g250-lerobot.log
echo "$(date +%T) done"
