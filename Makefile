# Two commands on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

.PHONY: run test test-fast test-slow lint bench bench-gpu bench-peers clean-venv

$(PY):
	python3 -m venv $(VENV)

# torch is pinned here (a CPU build sits on this machine's pip); pyproject only says torch>=2.3.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q '$(TORCH)'
	echo '$(TORCH)' > $(VENV)/constraints.txt
	$(PIP) install -q -c $(VENV)/constraints.txt -e '.[dev,all]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/sparseshare run configs/quickstart.yaml

# pytest exits 5 when it collects no tests; make fails on that as on any nonzero status, so
# never mask pytest's status here (no `|| true`, no `-` prefix).
test: $(STAMP)
	$(PY) -m pytest -q

# the unit tests alone (no CLI runs on real data, no Ray cluster): a quick loop while editing
test-fast: $(STAMP)
	$(PY) -m pytest -q -m 'not slow and not integration'

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# each prints its ratio, measured side by side in one run (README: Performance)
bench: $(STAMP)
	$(PY) bench/mask_memory.py
	$(PY) bench/masked_step.py
	$(PY) bench/experts.py
	$(PY) bench/fused.py
	$(PY) bench/throughput.py --unpacked
	$(PY) bench/scale.py

# one GPU, <= 6 minutes: step time, busy fraction, kernels/copies, masked/unmasked, throughput against
# batch size and packed units; writes docs/results/gpu.md (bench/gpu.py --device cpu --quick runs anywhere)
bench-gpu: $(STAMP)
	$(PY) bench/gpu.py --device cuda

# sparseshare against torch-rechub, DeepCTR-Torch and pytorch-crf, <= 10 minutes on 2 cores; writes
# docs/results/peers.md. The peers live in a venv of their own: every pip call there takes a constraints
# file holding torch at the pin above, so no peer's requirement can make pip resolve another torch.
PEERS_VENV ?= .venv-peers
PEERS_PY := $(PEERS_VENV)/bin/python
PEERS_STAMP := $(PEERS_VENV)/.installed
PEERS_PIP := $(PEERS_PY) -m pip install -q -c $(PEERS_VENV)/constraints.txt

$(PEERS_PY):
	python3 -m venv $(PEERS_VENV)

$(PEERS_STAMP): Makefile pyproject.toml bench/peers_requirements.txt | $(PEERS_PY)
	echo '$(TORCH)' > $(PEERS_VENV)/constraints.txt
	$(PEERS_PIP) --upgrade pip
	$(PEERS_PIP) '$(TORCH)'
	$(PEERS_PIP) -e .
	$(PEERS_PIP) -r bench/peers_requirements.txt
	touch $(PEERS_STAMP)

bench-peers: $(PEERS_STAMP)
	$(PEERS_PY) bench/peers.py

clean-venv:
	rm -rf $(VENV)
