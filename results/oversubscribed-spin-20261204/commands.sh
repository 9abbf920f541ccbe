#!/usr/bin/env bash
# Four rounds alternating two release builds; each round every case, 3 repetitions.
set -euo pipefail
BEFORE=${1:?usage: commands.sh BEFORE-PIPEBENCH AFTER-PIPEBENCH OUT-DIR}
AFTER=${2:?}
OUT=${3:?}/rounds
mkdir -p $OUT
cases() { # $1 binary, $2 tag, $3 round
  local b=$1 t=$2 r=$3
  $b sweep --workload jobserver --transport engine,linux-pipe --wait spin,park --workers 8 --tokens 2 --work 10us --repetitions 3 --csv $OUT/$t-jobserver-$r.csv --force --progress none
  $b sweep --workload contend --transport engine,linux-pipe --writers 2,8 --readers 2 --write-size 4K --repetitions 3 --csv $OUT/$t-contend-$r.csv --force --progress none
  $b run --workload contend --transport engine,linux-pipe --writers 4 --readers 1 --write-size 512 --repetitions 3 --csv $OUT/$t-contend512-$r.csv --force --progress none
  $b run --workload contend --transport engine,linux-pipe --writers 8 --readers 8 --write-size 64 --repetitions 3 --csv $OUT/$t-contend64-$r.csv --force --progress none
  $b sweep --transport engine --write-size 64,4K,64K,1M --writer-cpu 0 --reader-cpu 1 --repetitions 3 --csv $OUT/$t-stream-$r.csv --force --progress none
  $b run --workload pingpong --transport engine --repetitions 3 --csv $OUT/$t-pingpong-$r.csv --force --progress none
}
for r in 1 2 3 4; do
  if [ $((r % 2)) = 1 ]; then cases $BEFORE before $r; cases $AFTER after $r
  else cases $AFTER after $r; cases $BEFORE before $r; fi
  echo "round $r done $(date +%T)"
done
for t in before after; do for c in jobserver contend contend512 contend64 stream pingpong; do
  f=$3/$t-$c.csv; head -1 $OUT/$t-$c-1.csv > $f
  for r in 1 2 3 4; do tail -n +2 $OUT/$t-$c-$r.csv >> $f; done
done; done
echo all done
