# `make demo` and `make test` do the whole set-up on a fresh machine, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= out/demo

.PHONY: demo test setup system-packages bench bench-report clean

setup: $(STAMP)

system-packages:
	./scripts/install-system-packages.sh

$(STAMP): pyproject.toml constraints.txt package.json package-lock.json scripts/install-system-packages.sh scripts/install-node-packages.sh
	./scripts/install-system-packages.sh
	./scripts/install-node-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/harness demo --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist worksteal -q

bench: $(STAMP)
	$(PY) benchmarks/modbus_throughput.py

bench-report: $(STAMP)
	$(PY) benchmarks/report.py

clean:
	rm -rf $(VENV) out build *.egg-info
