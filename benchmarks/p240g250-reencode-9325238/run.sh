#!/bin/bash
# --reencode h264 of the 240x320 GOP-250 profile (time, memory, PSNR), then the reader of this commit on the
# copied, av1 and h264 conversions, interleaved
set -uo pipefail
cd /work/data
H=$(git -C /work/main rev-parse --short HEAD); M=/work/data/p240g250/measure-b; O=/work/data/reenc-$H; mkdir -p $O
rm -rf $M/wds-h264
echo "$(date +%T) convert h264 load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -v /work/main/.venv/bin/lerobot-wds convert p240g250/src $M/wds-h264 --reencode h264 --no-progress \
  --stats-json $O/convert-h264.json > $O/convert-h264.log 2> $O/convert-h264.time
echo "rc=$?"; tail -2 $O/convert-h264.log; grep -E "Elapsed|Maximum resident" $O/convert-h264.time
echo "$(date +%T) verify h264"
/work/main/.venv/bin/lerobot-wds verify $M/wds-h264 --source p240g250/src --decode 4 --json > $O/verify-h264.json 2> $O/verify-h264.err
echo "rc=$?"; tail -3 $O/verify-h264.err; head -c 1500 $O/verify-h264.json; echo
cd /tmp
for round in 1 2; do
  for kind in copy av1 h264; do
    echo "$(date +%T) $kind round $round load $(cut -d' ' -f1-3 /proc/loadavg)"
    /work/main/.venv/bin/lerobot-wds bench $M/wds-$kind --mode single sarm --num-workers 2 --batch-size 16 --return-uint8 \
      --num-batches 60 --warmup 5 --source-label p240g250-$kind --out $O/$kind > $O/$kind-r$round.log 2>&1
    echo "rc=$?"; grep "frames/s=" $O/$kind-r$round.log
  done
done
echo "$(date +%T) done"
