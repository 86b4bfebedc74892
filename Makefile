# Each target creates and fills .venv on first use.
PY := .venv/bin/python
VENV_STAMP := .venv/.installed

.PHONY: serve test bench train-demo clean-venv

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

# The embedded demo model (models/llasa-demo): speech, codec, LM, export, bench. Every stage
# resumes from .cache/demo; DEMO_SHARDS x 100 sentences of speech (400: about 44 h).
DEMO_SHARDS ?= 400
train-demo: $(VENV_STAMP)
	$(PY) -m pip install --quiet -e '.[dev,demo]'
	nice -n 10 $(PY) -m demo.speech --shards $(DEMO_SHARDS)
	nice -n 10 $(PY) -m demo.train_codec
	nice -n 10 $(PY) -m demo.align
	nice -n 10 $(PY) -m demo.train_lm
	$(PY) -m demo.export
	$(PY) -m bench.bench_demo

clean-venv:
	rm -rf .venv
