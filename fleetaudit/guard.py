"""The one gate before any packet goes to a host: every command that contacts one
(audit's scan and SSH, `check`, anything new) passes through `admit`.

A host with `fleetaudit_route_dev` (the lab sets it) may be contacted only when the
kernel routes the address we would reach (the host, or its first jump host) through
that interface. The transport asks here again right before it connects, so a new
command that forgets the check still cannot reach a host the guard refuses; the answer
is kept for the run, so the orchestrator's check and the transport's cost one lookup.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

from fleetaudit import addresses
from fleetaudit.errors import UnsafeTargetError
from fleetaudit.scan.command import validate_targets

_admitted: set[tuple[str, str]] = set()


async def admit(address: str | None, route_dev: str | None) -> None:
    """Return when `address` may be contacted; UnsafeTargetError saying why not."""
    if route_dev is None:
        return
    if address is None or not addresses.is_ip(address):
        # The kernel is asked about an address; a name would be resolved after the
        # check, perhaps to somewhere else: refuse rather than guess.
        raise UnsafeTargetError(f"fleetaudit_route_dev {route_dev} needs an address to "
                                f"check, not the name {address!r}")
    key = (route_dev, addresses.canonical(address))
    if key in _admitted:
        return
    await asyncio.to_thread(check_route, address, route_dev)
    _admitted.add(key)


def check_route(address: str, route_dev: str) -> None:
    """Raise UnsafeTargetError unless the kernel sends packets for `address` via `route_dev`.

    Asked of the kernel (``ip route get``, a local lookup that sends nothing) rather than
    computed, so policy routing or a route added later cannot take a scan elsewhere.
    """
    (ip,) = validate_targets([address])
    ip_bin = shutil.which("ip")
    if ip_bin is None:
        raise UnsafeTargetError(f"cannot check how {ip} is routed: 'ip' (iproute2) is missing")
    try:
        done = subprocess.run(
            [ip_bin, "-j", "route", "get", ip.split("%", 1)[0]],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        routes = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        raise UnsafeTargetError(f"cannot check how {ip} is routed: {exc}") from None
    if not routes:
        detail = done.stderr.strip() or "no route"
        raise UnsafeTargetError(f"cannot check how {ip} is routed: {detail}")
    dev = routes[0].get("dev") if isinstance(routes[0], dict) else None
    if dev != route_dev:
        raise UnsafeTargetError(
            f"{ip} is routed via {dev or 'nothing'}, not {route_dev}: refusing to scan or "
            "contact it"
        )
