#!/usr/bin/env bash
# Installs what fleetaudit needs on Debian: system tools via apt-get (when root) and
# the Python environment in .venv. Safe to run again: it only does what is missing.
#   scripts/setup.sh          what an audit needs
#   scripts/setup.sh --dev    plus the test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(nmap openssh-server openssh-client lsof iproute2 iptables procps sudo python3-venv)
extras="."
if [ "${1:-}" = "--dev" ]; then
  extras=".[dev]"
  # The report's browser tests: Debian's Chromium, driven by the playwright package;
  # net-tools: the lab host without ss lists its sockets with netstat; busybox: the probes
  # must answer alike on a busybox-only host (tests/integration/test_probes_busybox.py);
  # postgresql: the history store's tests start a throwaway server of their own.
  packages+=(chromium fonts-dejavu-core net-tools busybox postgresql)
fi

if [ "$(id -u)" -eq 0 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    # Installing openssh-server must not start the machine's own sshd on every address.
    guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
      guard=/usr/sbin/policy-rc.d
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -n "$guard" ] && rm -f "$guard"
  fi
else
  echo "setup: not root, so no apt-get; make sure these are installed: ${packages[*]}" >&2
fi

# Debian's python, not a pyenv shim: the venv must outlive whatever shell set it up.
python=/usr/bin/python3
[ -x "$python" ] || python=python3
stamp=".venv/.fleetaudit-setup"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $extras"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  # -qq: keep errors, drop the noise of mirrors this machine's pip.conf may list.
  .venv/bin/python -m pip install -qq --upgrade pip
  .venv/bin/python -m pip install -qq -e "$extras"
  echo "$want" > "$stamp"
fi
