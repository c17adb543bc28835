#!/usr/bin/env bash
# Issue 11, item 3: the SIGTERM-during-an-audit test, N times in a row (default 50) under
# CPU, I/O and memory load (stress-ng), holding the lab lock. Too slow for every run of
# the suite, which runs the test once. Usage: bash scripts/stress_sigterm.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
command -v stress-ng >/dev/null || { echo "stress-ng missing: apt-get install stress-ng" >&2; exit 2; }
exec flock /tmp/fleetaudit-lab.lock bash -c '
  stress-ng --cpu "$(nproc)" --io 2 --vm 1 --vm-bytes 256M --timeout 3600s >/dev/null 2>&1 &
  load=$!
  trap "kill $load 2>/dev/null; wait $load 2>/dev/null" EXIT
  sleep 2
  passed=0
  for i in $(seq 1 "$0"); do
    if .venv/bin/pytest -q -p no:cacheprovider -W ignore \
        "tests/integration/test_scan_cancel.py::test_ctrl_c_during_an_audit_stops_nmap_and_ends_with_a_message[sigterm]" \
        >/tmp/stress_sigterm.last 2>&1; then
      passed=$((passed + 1))
    else
      echo "run $i FAILED:"; tail -30 /tmp/stress_sigterm.last; echo "$passed passed before it"; exit 1
    fi
  done
  echo "$passed/$0 passed in a row under load"
' "$n"
