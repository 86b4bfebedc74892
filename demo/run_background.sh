#!/bin/sh
# The demo model v2 on this machine's spare CPU: data and training as `make train-demo` runs them
# (`make demo-weights`), at the lowest priority, log in .cache/demo/train.log. Every stage
# resumes, so after any interruption run it again:  nohup sh demo/run_background.sh > /dev/null 2>&1 &
cd "$(dirname "$0")/.." || exit 1
mkdir -p .cache/demo
exec nice -n 19 make demo-weights DEMO_NICE=19 >> .cache/demo/train.log 2>&1
