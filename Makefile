.PHONY: run test bench lint format

run:  ## the product on embedded defaults (SQLite, filesystem broker, demo data)
	scripts/run

test:  ## the whole test suite on PostgreSQL
	scripts/test

bench:  ## write-path throughput vs raw psycopg (PostgreSQL)
	scripts/bootstrap && .venv/bin/python bench/transitions.py

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	.venv/bin/ruff check --fix . && .venv/bin/ruff format .
