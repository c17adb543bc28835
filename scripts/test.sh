#!/usr/bin/env bash
# Everything CI checks: set-up, lint, types, then the tests (lab tests need root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check fleetaudit tests benchmarks scripts
.venv/bin/mypy fleetaudit
.venv/bin/pytest -ra "$@"
