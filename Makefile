# Each target creates and fills .venv on first use.
PY := .venv/bin/python
VENV_STAMP := .venv/.installed

.PHONY: serve test bench demo-weights train-demo clean-venv

$(VENV_STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, so no dependency can pull a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(VENV_STAMP)

serve: $(VENV_STAMP)
	# Requests over 4 MiB get RESOURCE_EXHAUSTED from the proxy (Ray 2.60 allows 2 GiB by default).
	RAY_SERVE_GRPC_MAX_MESSAGE_SIZE=4194304 .venv/bin/serve run serve_config.yaml

test: $(VENV_STAMP)
	$(PY) -m pytest

# The embedded demo model, v2 (demo/, models/llasa-demo/README.md): several voices' speech cached
# as codec codes in demo/data (committed; demo.data skips shards that exist and rebuilds missing
# ones bit for bit), the LM (resumes from .cache/demo/lm-v2/state.pt), then 2,000 more steps from
# its best weights, four in five of them prompted with a reference as every served request is
# (resumes from .cache/demo/lm-v2-more/state.pt), a candidate model folder and its bench.
# DEMO_SHARDS x 100 items (260: about 21 h of speech).
# `demo-weights` is data and training alone (demo/run_background.sh runs it at the lowest priority).
DEMO_SHARDS ?= 260
DEMO_NICE ?= 10
demo-weights: $(VENV_STAMP)
	$(PY) -m pip install --quiet -e '.[dev,demo]'
	nice -n $(DEMO_NICE) $(PY) -m demo.data --shards $(DEMO_SHARDS)
	nice -n $(DEMO_NICE) sh demo/with_jemalloc.sh $(PY) -m demo.train_lm
	nice -n $(DEMO_NICE) sh demo/with_jemalloc.sh $(PY) -m demo.train_lm --init-from .cache/demo/lm-v2/best \
		--out .cache/demo/lm-v2-more --lr 3e-4 --warmup 100 --max-steps 2000 --seed 2 --clone-share 0.8 --eval-every 1500

train-demo: demo-weights
	$(PY) -m demo.export --lm .cache/demo/lm-v2-more/best
	$(PY) -m bench.bench_demo --model .cache/demo/candidate --clone 5

clean-venv:
	rm -rf .venv
