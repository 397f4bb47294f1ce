# The two commands of README.md: `make main` (set up, run the main job) and `make test`.
.PHONY: main test bench

main:
	scripts/setup.sh
	.venv/bin/ree run experiments/baseline.toml

test:
	scripts/setup.sh --test
	.venv/bin/python -m pytest

bench:
	scripts/setup.sh
	.venv/bin/python benchmarks/run_benchmarks.py
