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

# The suite runs in PYTEST_WORKERS processes (pytest-xdist; README.md, "Tests"). Bytecode is cached under .venv even
# when the environment sets PYTHONDONTWRITEBYTECODE: otherwise every worker, and every command a test starts,
# compiles the project and rewrites the tests' asserts again.
PYTEST_WORKERS ?= 4
test: venv lint
	PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX="$(CURDIR)/.venv/pycache" \
	  .venv/bin/python -m pytest -q -n $(PYTEST_WORKERS)

# Re-pin after changing dependencies in pyproject.toml.
lock: venv
	.venv/bin/pip install --quiet -e '.[dev]'
	.venv/bin/pip freeze --exclude-editable > requirements.lock
