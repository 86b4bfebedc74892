#!/bin/sh
# The demo model v2 on this machine's spare CPU: data (demo.data), then training (demo.train_lm),
# both at the lowest priority, logs in .cache/demo. Both resume, so after any interruption run it
# again:  nohup sh demo/run_background.sh > /dev/null 2>&1 &
cd "$(dirname "$0")/.." || exit 1
# With glibc's malloc the LM's memory grows with every new batch shape (12.7 -> 18.7 GB in 20 min).
# jemalloc (apt install libjemalloc2), used where installed, keeps it flat; returning freed pages
# to the system (its default decay) made a step 1.4-2.1x slower, so it keeps them.
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
[ -e "$JEMALLOC" ] && export LD_PRELOAD="$JEMALLOC" MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1"
mkdir -p .cache/demo
nice -n 19 .venv/bin/python -m demo.data >> .cache/demo/data.log 2>&1 &&
    nice -n 19 .venv/bin/python -m demo.train_lm >> .cache/demo/train_lm.log 2>&1
