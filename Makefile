# Two commands for a newcomer: `make demo` and `make test` (both bootstrap .venv).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean screenshots

$(STAMP): pyproject.toml requirements.lock requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, exactly pinned (a CPU build): anything that pulls an unpinned torch gets CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	rm -rf demo-output
	$(VENV)/bin/flute demo --out demo-output

test: $(STAMP)
	bash scripts/test.sh

screenshots: $(STAMP)
	$(PY) scripts/ui_screenshots.py screenshots

clean:
	rm -rf $(VENV) demo-output .pytest_cache screenshots
