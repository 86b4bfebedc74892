#!/bin/sh
# Runs a command with jemalloc preloaded where installed (apt install libjemalloc2), for the demo
# LM's training: with glibc's malloc its memory grows with every new batch shape (12.7 -> 18.7 GB
# in 20 min). jemalloc keeps it flat; returning freed pages to the system (its default decay)
# made a step 1.4-2.1x slower, so it keeps them.
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
[ -e "$JEMALLOC" ] && export LD_PRELOAD="$JEMALLOC" MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1"
exec "$@"
