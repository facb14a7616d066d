"""Measuring tools the scripts run (scripts/bench, evaluate, latency, loadtest, fuzz,
bench-update, bench-ray, int8-check). They live outside the installed packages: the
wheel users install holds none of them."""
