# Quick start: `make demo` runs the gateway with its demo department systems; `make test` runs everything.
.PHONY: demo serve test lint venv lock

venv:
	@scripts/venv.sh

demo: venv
	.venv/bin/onewindow demo

serve: venv
	.venv/bin/onewindow serve

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

# The suite runs in PYTEST_WORKERS processes (pytest-xdist). Four on the 2-core CI machine: much of a test's time is
# spent waiting (sockets, timeouts, child processes, PostgreSQL), and measured against 2 and 3 workers, 4 finished
# soonest, most of all while other work shared the machine.
# Workers take two tests at a time (--maxschedchunk), so the slow tests collected first (tests/conftest.py) spread
# over all of them. Bytecode is cached under .venv even when the environment sets PYTHONDONTWRITEBYTECODE:
# otherwise every worker, and every command a test starts, compiles the project and rewrites the asserts again.
PYTEST_WORKERS ?= 4
test: venv lint
	PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX="$(CURDIR)/.venv/pycache" \
	  .venv/bin/python -m pytest -q -n $(PYTEST_WORKERS) --maxschedchunk 2

# Re-pin after changing dependencies in pyproject.toml.
lock: venv
	.venv/bin/pip install --quiet -e '.[dev]'
	.venv/bin/pip freeze --exclude-editable > requirements.lock
