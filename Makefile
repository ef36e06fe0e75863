# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# torch/torchvision are pinned exactly: these builds lie on local disk; a bare `torch` pulls GBs.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install test test-world demo clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q -n 2 --dist loadgroup

# The synthetic world's behaviour, one seed of the whole world (tests/test_world_behaviour.py): too long for `make test`'s budget.
test-world: install
	$(PY) -m pytest -q -m world

demo: install
	$(VENV)/bin/pad-bench demo

clean-venv:
	rm -rf $(VENV)
