"""The lab's network: one bridge, a netns per host, a veth each; and the route guard.

Everything is created through `ip -batch` (one process for the whole host side, one per
namespace for its inside), so bring-up cost grows linearly with the host count.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fleetaudit import scan
from fleetaudit.errors import LabError
from fleetaudit.lab.proc import run
from fleetaudit.lab.state import DEFAULT_BRIDGE, LabState, SysctlChange

# Every lab, whatever its subnet, stays inside this block: the guard of last resort.
LAB_SUPERNET = ipaddress.IPv4Network("10.99.0.0/16")
# A Linux bridge numbers its ports with 10 bits; keep clear of that limit.
MAX_HOSTS = 1000
# Host addresses are .11 to .250 of each /24: .1 is the bridge, the rest stay free and
# no host gets an address that looks like a network or broadcast address.
FIRST_OCTET, LAST_OCTET = 11, 250
PER_BLOCK = LAST_OCTET - FIRST_OCTET + 1
_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
_NEIGH = "/proc/sys/net/ipv4/neigh/default/gc_thresh{}"


@dataclass(frozen=True)
class HostNet:
    name: str
    netns: str
    veth: str
    address: ipaddress.IPv4Address


@dataclass(frozen=True)
class NetPlan:
    bridge: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    hosts: list[HostNet]
    # The host reachable only through the bastion (the last of `hosts`), on a /30 of the
    # lab's own subnet that the machine routes nowhere (an `unreachable` route).
    hidden: HostNet | None = None
    hidden_net: ipaddress.IPv4Network | None = None


BASTION, HIDDEN = "lab-bastion", "lab-hidden"


def add_bastion(plan: NetPlan) -> NetPlan:
    """The last planned host becomes the bastion; behind it, on a veth pair of its own, a
    host the machine has no route to: .252/30 of the subnet's last /24 (lab hosts use
    .11-.250), .253 on the bastion's eth1, .254 the hidden host's eth0."""
    last = ipaddress.IPv4Network(f"{plan.subnet.broadcast_address}/24", strict=False)
    inner = ipaddress.IPv4Network(f"{last.network_address + 252}/30")
    bastion = replace(plan.hosts[-1], name=BASTION)
    hidden = HostNet(name=HIDDEN, netns=f"{bastion.netns}-in", veth="eth1",
                     address=inner.network_address + 2)
    return replace(plan, hosts=[*plan.hosts[:-1], bastion], hidden=hidden, hidden_net=inner)


def batch_hidden(plan: NetPlan) -> tuple[str, str, str]:
    """`ip -batch` input for the machine (namespace, unreachable route), the bastion's
    namespace (eth1, its end of the pair) and the hidden host's."""
    assert plan.hidden is not None and plan.hidden_net is not None
    hidden, inner = plan.hidden, plan.hidden_net
    machine = f"netns add {hidden.netns}\nroute add unreachable {inner}\n"
    bastion = (f"link add eth1 type veth peer name eth0 netns {hidden.netns}\n"
               "link set dev eth1 addrgenmode none\n"
               f"address add {inner.network_address + 1}/{inner.prefixlen} dev eth1\n"
               "link set dev eth1 up\n")
    return machine, bastion, batch_inside(hidden, inner.prefixlen)


# --- pure planning ----------------------------------------------------------------


def parse_subnet(subnet: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise LabError(f"subnet {subnet!r} is not an IPv4 network: {exc}") from exc
    if not net.subnet_of(LAB_SUPERNET):
        raise LabError(f"subnet {net} is outside {LAB_SUPERNET}, the only block a lab may use")
    if net.prefixlen > 24:
        raise LabError(f"subnet {net} is smaller than a /24")
    return net


def capacity(net: ipaddress.IPv4Network) -> int:
    return PER_BLOCK * (1 << (24 - net.prefixlen))


def gateway_of(net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return net.network_address + 1


def host_address(net: ipaddress.IPv4Network, index: int) -> ipaddress.IPv4Address:
    """Address of host `index` (0-based): .11-.250 of the first /24, then of the next."""
    if not 0 <= index < capacity(net):
        raise LabError(f"subnet {net} holds at most {capacity(net)} lab hosts")
    block, offset = divmod(index, PER_BLOCK)
    return net.network_address + block * 256 + FIRST_OCTET + offset


def host_names(count: int) -> list[str]:
    width = max(2, len(str(count)))
    return [f"lab-{i:0{width}d}" for i in range(1, count + 1)]


def check_ifname(name: str, what: str = "interface") -> str:
    if not _IFNAME.match(name):
        raise LabError(f"{what} name {name!r} is not a valid Linux interface name "
                       "(1-15 characters: letters, digits, '_', '.', '-')")
    return name


def netns_prefix(bridge: str) -> str:
    """The default lab's namespaces are fa-hNN; any other lab's carry its bridge name."""
    return "fa-h" if bridge == DEFAULT_BRIDGE else f"{bridge}-h"


def veth_name(bridge: str, index: int) -> str:
    """Host-side veth of host `index` (1-based): unique per bridge, within 15 characters."""
    name = f"{bridge}v{index}"
    if len(name) > 15:
        digest = hashlib.sha256(bridge.encode()).hexdigest()[:6]
        name = f"fav{digest}{index}"
    return name


def plan_network(count: int, subnet: str, bridge: str, ns_prefix: str | None = None) -> NetPlan:
    if not 1 <= count <= MAX_HOSTS:
        raise LabError(f"a lab has 1 to {MAX_HOSTS} hosts, not {count}")
    check_ifname(bridge, "bridge")
    net = parse_subnet(subnet)
    if count > capacity(net):
        raise LabError(f"subnet {net} holds at most {capacity(net)} lab hosts, not {count}")
    prefix = netns_prefix(bridge) if ns_prefix is None else ns_prefix
    names = host_names(count)
    width = len(names[0]) - len("lab-")
    hosts = [
        HostNet(name=name, netns=f"{prefix}{i:0{width}d}", veth=veth_name(bridge, i),
                address=host_address(net, i - 1))
        for i, name in enumerate(names, start=1)
    ]
    return NetPlan(bridge=bridge, subnet=net, gateway=gateway_of(net), hosts=hosts)


def route_conflicts(
    routes: Iterable[dict[str, Any]], subnet: ipaddress.IPv4Network,
    used: Sequence[ipaddress.IPv4Address],
) -> list[str]:
    """Existing routes that would send one of our addresses somewhere other than our bridge.

    A route broader than our subnet (a default route, 10.0.0.0/8 via a VPN, another lab's
    /16) loses to our more specific one; only an equal or narrower route covering an address
    we are about to use wins over it.
    """
    found = []
    used_set = set(used)
    for route in routes:
        dst = route.get("dst")
        if not dst or dst == "default":
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if not isinstance(net, ipaddress.IPv4Network) or not net.overlaps(subnet):
            continue
        if net.prefixlen < subnet.prefixlen:
            continue
        if net.num_addresses > len(used_set):
            hit = any(address in net for address in used_set)
        else:
            hit = any(address in used_set for address in net)
        if hit:
            where = route.get("dev") or route.get("gateway") or "?"
            table = route.get("table", "main")
            found.append(f"{dst} via {where} (table {table})")
    return found


def batch_host_side(plan: NetPlan, alias: str) -> str:
    lines = [
        f"link add {plan.bridge} type bridge",
        f'link set dev {plan.bridge} alias "{alias}"',
        f"link set dev {plan.bridge} addrgenmode none",
        f"address add {plan.gateway}/{plan.subnet.prefixlen} dev {plan.bridge}",
        f"link set dev {plan.bridge} up",
    ]
    for host in plan.hosts:
        lines += [
            f"netns add {host.netns}",
            f"link add {host.veth} type veth peer name eth0 netns {host.netns}",
            # No IPv6 link-local address: no DAD, router or MLD chatter flooding the bridge.
            f"link set dev {host.veth} addrgenmode none",
            f"link set dev {host.veth} master {plan.bridge} up",
        ]
    return "\n".join(lines) + "\n"


def batch_inside(host: HostNet, prefixlen: int) -> str:
    return (
        "link set dev lo up\n"
        "link set dev eth0 addrgenmode none\n"
        f"address add {host.address}/{prefixlen} dev eth0\n"
        "link set dev eth0 up\n"
    )


def bridge_alias(state_dir: Path) -> str:
    """Marks the bridge as ours, so no lab ever deletes a bridge it did not create."""
    return f"fleetaudit-lab {state_dir}"


# --- reading the machine -------------------------------------------------------------


def _json(argv: Sequence[str]) -> list[dict[str, Any]]:
    out = run(argv).strip()
    if not out:
        return []
    try:
        data = json.loads(out)
    except json.JSONDecodeError as exc:
        raise LabError(f"`{' '.join(argv)}` printed no JSON: {exc}") from exc
    return data if isinstance(data, list) else []


def links() -> dict[str, dict[str, Any]]:
    return {link["ifname"]: link for link in _json(["ip", "-j", "-d", "link", "show"])
            if "ifname" in link}


def namespaces() -> set[str]:
    return {ns["name"] for ns in _json(["ip", "-j", "netns", "list"]) if "name" in ns}


def routes() -> list[dict[str, Any]]:
    return _json(["ip", "-j", "-4", "route", "show", "table", "all"])


def preflight(plan: NetPlan) -> None:
    """Refuse, before creating anything, to build over someone else's network."""
    existing = links()
    if plan.bridge in existing:
        alias = existing[plan.bridge].get("ifalias", "")
        owner = f" (made by {alias})" if alias.startswith("fleetaudit-lab ") else ""
        raise LabError(f"interface {plan.bridge} already exists{owner}: a lab is already up? "
                       "run `fleetaudit lab down`, or choose another bridge name")
    taken = [h.veth for h in plan.hosts if h.veth in existing]
    if taken:
        raise LabError(f"interfaces already exist: {', '.join(taken[:5])}: "
                       "run `fleetaudit lab down` first")
    present = namespaces()
    clash = [h.netns for h in [*plan.hosts, *([plan.hidden] if plan.hidden else [])]
             if h.netns in present]
    if clash:
        raise LabError(f"network namespaces already exist: {', '.join(clash[:5])}: a lab is "
                       "already up? run `fleetaudit lab down`")
    used = [plan.gateway, *(h.address for h in plan.hosts)]
    conflicts = route_conflicts(routes(), plan.subnet, used)
    if conflicts:
        raise LabError(f"subnet {plan.subnet} is already routed elsewhere: "
                       f"{'; '.join(conflicts[:5])}")


# --- building and tearing down ----------------------------------------------------------


def create(plan: NetPlan, state: LabState, save: Callable[[], None]) -> None:
    """Record every name first, then create; a failure halfway leaves a complete record."""
    state.bridge_created = True
    state.netns = [h.netns for h in plan.hosts]
    state.veths = [h.veth for h in plan.hosts]
    save()
    run(["ip", "-batch", "-"], stdin=batch_host_side(plan, state.bridge_alias),
        timeout=60 + 0.2 * len(plan.hosts))

    def inside(host: HostNet) -> None:
        run(["ip", "-n", host.netns, "-batch", "-"],
            stdin=batch_inside(host, plan.subnet.prefixlen))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(inside, plan.hosts))
    if plan.hidden is not None:
        assert plan.hidden_net is not None
        state.netns.append(plan.hidden.netns)
        state.routes.append(str(plan.hidden_net))
        save()
        machine, bastion, hidden = batch_hidden(plan)
        run(["ip", "-batch", "-"], stdin=machine)
        run(["ip", "-n", plan.hosts[-1].netns, "-batch", "-"], stdin=bastion)
        run(["ip", "-n", plan.hidden.netns, "-batch", "-"], stdin=hidden)


def destroy(state: LabState) -> list[str]:
    """Delete the recorded namespaces, veths and bridge that still exist; returns problems."""
    problems: list[str] = []
    present = namespaces()
    gone = [ns for ns in state.netns if ns in present]
    if gone:
        # -force: keep going past one failure; deleting a netns also destroys its veth pair.
        try:
            run(["ip", "-force", "-batch", "-"], stdin="".join(f"netns del {ns}\n" for ns in gone),
                timeout=60 + 0.1 * len(gone))
        except LabError as exc:
            problems.append(str(exc))
    # The kernel destroys a dead namespace's devices asynchronously: give it a moment.
    leftover: list[str] = []
    deadline = time.monotonic() + 10
    while True:
        existing = links()
        leftover = [v for v in state.veths if v in existing]
        if not leftover or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if leftover:
        # A namespace kept alive by a process we did not start (e.g. an SSH session).
        try:
            run(["ip", "-force", "-batch", "-"],
                stdin="".join(f"link del dev {v}\n" for v in leftover))
        except LabError as exc:
            problems.append(str(exc))
    if state.bridge_created:
        bridge = existing.get(state.bridge)
        if bridge is not None:
            if bridge.get("ifalias") != state.bridge_alias:
                problems.append(f"bridge {state.bridge} is not the one this lab made "
                                f"(alias {bridge.get('ifalias')!r}): left alone")
            else:
                try:
                    run(["ip", "link", "del", "dev", state.bridge])
                except LabError as exc:
                    problems.append(str(exc))
    unreachable = {r.get("dst") for r in routes() if r.get("type") == "unreachable"}
    for route in list(state.routes):
        if route in unreachable:
            try:
                run(["ip", "route", "del", "unreachable", route])
            except LabError as exc:
                problems.append(str(exc))
                continue
        state.routes.remove(route)
    remaining = namespaces() & set(state.netns)
    if remaining:
        problems.append(f"namespaces still present: {', '.join(sorted(remaining)[:5])}")
    return problems


# --- ARP table limits -------------------------------------------------------------------


def neigh_targets(count: int, current: Sequence[int]) -> list[int] | None:
    """New gc_thresh1..3 for a lab of `count` hosts, or None when the current ones suffice.

    The IPv4 neighbour table is one table for all namespaces: each host needs an entry on the
    bridge side and one for the gateway in its namespace.
    """
    needed = 2 * count + 256
    if needed <= current[1]:
        return None
    return [max(c, t) for c, t in zip(current, (needed, 2 * needed, 4 * needed), strict=True)]


def raise_neigh_limits(count: int, state: LabState, save: Callable[[], None]) -> None:
    paths = [_NEIGH.format(i) for i in (1, 2, 3)]
    current = [int(Path(p).read_text(encoding="ascii")) for p in paths]
    targets = neigh_targets(count, current)
    if targets is None:
        return
    changes = [SysctlChange(path=p, old=str(c), new=str(t))
               for p, c, t in zip(paths, current, targets, strict=True) if t != c]
    state.sysctls = changes
    save()
    # Raise the hard limit first: the kernel wants thresh1 <= thresh2 <= thresh3 meaningful.
    for change in reversed(changes):
        _write_sysctl(change.path, change.new)


def restore_sysctls(state: LabState) -> list[str]:
    """Put back what we changed, unless someone changed it again since (then it is theirs)."""
    problems = []
    for change in state.sysctls:
        try:
            if Path(change.path).read_text(encoding="ascii").strip() == change.new:
                _write_sysctl(change.path, change.old)
        except (OSError, LabError) as exc:
            problems.append(f"cannot restore {change.path} to {change.old}: {exc}")
    return problems


def _write_sysctl(path: str, value: str) -> None:
    try:
        Path(path).write_text(value + "\n", encoding="ascii")
    except OSError as exc:
        raise LabError(f"cannot set {path} to {value}: {exc}") from exc


# --- the route guard --------------------------------------------------------------------


def check_route(address: str, bridge: str) -> None:
    """Raise UnsafeTargetError unless the kernel sends `address` out through `bridge`.

    The scanner's own gate, so the lab and every audit refuse by one rule.
    """
    scan.check_route(address, bridge)
