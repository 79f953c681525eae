#!/bin/bash
# LeRobotDataset on g250 (single, sarm) and g250nc (all three), same settings as bench-p480-ab.sh
set -uo pipefail
cd /tmp
PY=/work/main/.venv312/bin/python
D=/work/data/p480x; O=/work/data/p480x/ab-9325238
for pm in "g250 single" "g250 sarm" "g250nc single" "g250nc window8x1s" "g250nc sarm"; do
  set -- $pm; prof=$1; mode=$2
  nb=3; wu=1; [ $mode = single ] && { nb=12; wu=2; }
  echo "$(date +%T) $prof LeRobotDataset $mode ($nb after $wu) load $(cut -d' ' -f1-3 /proc/loadavg)"
  timeout 600 $PY -m lerobot_wds.tools.cli bench $D/$prof/wds --mode $mode --baseline lerobot --baseline-only \
    --lerobot-root $D/$prof/src --source-label p480-$prof --num-batches $nb --warmup $wu \
    --batch-size 16 --num-workers 2 --return-uint8 --out $O/$prof-lerobot > $O/$prof-lerobot-$mode.log 2>&1
  echo "rc=$?"; grep "frames/s=" $O/$prof-lerobot-$mode.log
done
echo "$(date +%T) done"
