# The two commands of README.md: `make main` (set up, run the main job) and `make test`.
.PHONY: main test bench results

# The researchers' main job: every diversification lever under the quota shock, 30
# replications each, with its report, into results/diversification/.
main:
	scripts/setup.sh
	.venv/bin/ree batch experiments/diversification.toml

test:
	scripts/setup.sh --test
	.venv/bin/python -m pytest

bench:
	scripts/setup.sh
	.venv/bin/python benchmarks/run_benchmarks.py

# Everything committed under results/ (see results/README.md), the main job included.
# Batch stores are started afresh: a store made by other model code is refused. The
# calibration comes first: it writes the ensemble (experiments/calibrated/) that the
# forward experiments run over.
results:
	rm -rf results/diversification results/quota_sweep results/sensitivity results/licensing_2025_approval results/negotiation results/validation/calibration_runs
	scripts/setup.sh
	.venv/bin/ree calibrate
	.venv/bin/ree validate
	.venv/bin/ree validate --holdout 2025
	$(MAKE) main
	.venv/bin/ree run experiments/baseline.toml
	.venv/bin/ree run experiments/quota_shock.toml --out results/runs/quota_shock
	.venv/bin/ree batch experiments/quota_sweep.toml
	.venv/bin/ree batch experiments/sensitivity.toml
	.venv/bin/ree batch experiments/licensing_2025_approval.toml
	.venv/bin/ree batch experiments/negotiation.toml
	.venv/bin/ree run experiments/truce_2025.toml --out results/runs/truce_2025
	scripts/setup.sh --test
	REE_VIZ_SCREENSHOT=results/viz.png .venv/bin/python -m pytest -q tests/test_viz_browser.py
