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

test: venv lint
	.venv/bin/python -m pytest -q

# Re-pin after changing dependencies in pyproject.toml.
lock: venv
	.venv/bin/pip install --quiet -e '.[dev]'
	.venv/bin/pip freeze --exclude-editable > requirements.lock
