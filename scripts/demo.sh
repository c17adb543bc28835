#!/usr/bin/env bash
# The demo audit: as root, a lab fleet of SSH hosts in network namespaces is brought
# up, audited and torn down; as any other user, the local machine is audited.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fleetaudit demo --out reports/demo "$@"
