#!/bin/sh
# The demo model v2 on this machine's spare CPU: data (demo.data), then training (demo.train_lm,
# with jemalloc where installed, and its 2,000-step continuation as `make train-demo` runs it),
# both at the lowest priority, logs in .cache/demo. Both resume, so
# after any interruption run it again:  nohup sh demo/run_background.sh > /dev/null 2>&1 &
cd "$(dirname "$0")/.." || exit 1
mkdir -p .cache/demo
nice -n 19 .venv/bin/python -m demo.data >> .cache/demo/data.log 2>&1 &&
    nice -n 19 sh demo/with_jemalloc.sh .venv/bin/python -m demo.train_lm >> .cache/demo/train_lm.log 2>&1 &&
    nice -n 19 sh demo/with_jemalloc.sh .venv/bin/python -m demo.train_lm --init-from .cache/demo/lm-v2/best \
        --out .cache/demo/lm-v2-more --lr 3e-4 --warmup 100 --max-steps 2000 --seed 2 --clone-share 0.8 \
        --eval-every 1500 >> .cache/demo/train_lm.log 2>&1
