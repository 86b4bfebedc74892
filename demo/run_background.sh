#!/bin/sh
# The demo model v2 on this machine's spare CPU: data (demo.data), then training (demo.train_lm,
# with jemalloc where installed), both at the lowest priority, logs in .cache/demo. Both resume, so
# after any interruption run it again:  nohup sh demo/run_background.sh > /dev/null 2>&1 &
cd "$(dirname "$0")/.." || exit 1
mkdir -p .cache/demo
nice -n 19 .venv/bin/python -m demo.data >> .cache/demo/data.log 2>&1 &&
    nice -n 19 sh demo/with_jemalloc.sh .venv/bin/python -m demo.train_lm >> .cache/demo/train_lm.log 2>&1
