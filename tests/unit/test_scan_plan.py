"""The scan plan as pure functions: profiles and argv (what nmap may do), discovery results ->
version batches, and merging the two phases back into one view per host."""

from __future__ import annotations

import shlex
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.errors import ConfigError, ScanError, UnsafeTargetError
from fleetaudit.models import ExternalHost, ExternalPort, ExtraPorts, PortRange, Proto
from fleetaudit.parsers.nmap import parse_nmap_xml
from fleetaudit.scan.command import (
    PortSelection,
    Profile,
    discovery_job,
    make_settings,
    parse_port_spec,
    single_job,
    validate_targets,
    version_job,
)
from fleetaudit.scan.engine import discovery_jobs, dry_run_lines, scan_jobs
from fleetaudit.scan.plan import (
    ProcessResult,
    combine_hosts,
    merge_version,
    plan_version_batches,
    ports_to_identify,
    single_pass,
    split_batches,
    summarize,
    with_proto,
)

TCP, UDP = Proto.TCP, Proto.UDP
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nmap"
ROOT = make_settings("quick", privileged=True)


def host(address: str, open_ports: dict[int, str] | None = None, *, unlisted: str = "closed",
         proto: Proto = TCP, status: str = "up", scanned: tuple[int, int] = (1, 65535),
         listed: dict[int, str] | None = None) -> ExternalHost:
    """A discovery result: `open_ports` open, `listed` other listed states, the rest `unlisted`."""
    states = {**(listed or {}), **{p: "open" for p in (open_ports or {})}}
    return ExternalHost(
        address=address, status=status, reason="arp-response",
        ports=[ExternalPort(proto=proto, port=p, state=s, reason="syn-ack")
               for p, s in sorted(states.items())],
        extraports=[ExtraPorts(proto=proto, state=unlisted, count=100)],
        scanned={proto: [PortRange(first=scanned[0], last=scanned[1])]},
    )


# --- profiles, options, port lists -------------------------------------------------------


def test_profiles_choose_ports_and_version_intensity():
    quick = make_settings("quick", privileged=True)
    assert quick.selections == (PortSelection(proto=TCP, top=1000),) and quick.version_light
    standard = make_settings("standard", privileged=False)
    assert standard.selections == (PortSelection(proto=TCP, ranges=((1, 65535),)),)
    assert not standard.version_light and standard.scan_type == "connect"
    full = make_settings(Profile.FULL, privileged=True)
    assert full.selections == (PortSelection(proto=TCP, ranges=((1, 65535),)),
                               PortSelection(proto=UDP, top=100))
    assert full.scan_type == "syn,udp"


def test_udp_without_root_is_a_clear_config_error():
    with pytest.raises(ConfigError, match=r"profile 'full' scans UDP, which needs root"):
        make_settings("full", privileged=False)
    with pytest.raises(ConfigError, match="needs root"):
        make_settings("quick", "T:22,U:53", privileged=False)
    make_settings("quick", "T:22,80", privileged=False)  # TCP only: fine


def test_explicit_ports_replace_the_profiles_choice():
    s = make_settings("quick", "U:53,161,T:22,80-81,21", privileged=True)
    assert s.selections == (PortSelection(proto=TCP, ranges=((21, 22), (80, 81))),
                            PortSelection(proto=UDP, ranges=((53, 53), (161, 161))))
    assert s.version_light  # the profile still sets the intensity


def test_port_prefix_holds_until_the_next_one():
    assert parse_port_spec("T:22,80,U:53,123,T:443") == {
        TCP: [(22, 22), (80, 80), (443, 443)], UDP: [(53, 53), (123, 123)]}
    assert parse_port_spec("22, 20-25,1-3") == {TCP: [(1, 3), (20, 25)]}


@pytest.mark.parametrize("ports", ["", "a", "22,", "0-70000", "90-80", "22;id", "ssh", "-",
                                   "S:22", "T:"])
def test_bad_port_lists_are_config_errors(ports):
    with pytest.raises(ConfigError):
        make_settings("quick", ports, privileged=True)


@pytest.mark.parametrize("kwargs", [{"profile": "fast"}, {"batch_size": 0},
                                    {"concurrency": 0}, {"version_host_timeout": "soon"},
                                    {"discovery_concurrency": 0},
                                    {"single_pass_max_hosts": -1},
                                    {"discovery_concurrency": 5, "concurrency": 4}])
def test_bad_settings_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        make_settings(privileged=True, **kwargs)


@pytest.mark.parametrize(
    "extra",
    [["-iL", "/etc/hosts"], ["-iR", "10"], ["192.0.2.9"], ["-R"], ["--system-dns"],
     ["--dns-servers", "192.0.2.53"], ["--script", "vuln"], ["-oN", "/tmp/x"], ["-S", "1.2.3.4"],
     ["-D", "RND:10"], ["--resume", "x"], ["--max-retries", "2;rm"], ["--max-retries"],
     ["--version-all=1"], ["-T6"], ["-sV"], ["-v"], ["-p", "1-65535"]],
)  # fmt: skip
def test_extra_args_outside_the_allowlist_are_refused(extra):
    with pytest.raises(ConfigError):
        make_settings("quick", privileged=True, extra_args=extra)


def test_version_options_go_to_the_version_phase_only():
    s = make_settings("standard", privileged=True,
                      extra_args=["-T4", "--version-intensity=5", "--max-retries", "1"])
    assert s.common_args == ("-T4", "--max-retries", "1")
    assert s.version_args == ("--version-intensity", "5")
    d = discovery_job("d", ["192.0.2.1"], s.selections[0], s)
    assert "--version-intensity" not in d.args and "-T4" in d.args
    v = version_job("v", ["192.0.2.1"], TCP, [22], s, probes=1)
    assert v.args[-4:] == ("--max-retries", "1", "--version-intensity", "5")


# --- targets and argv ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["localhost", "example.org", "10.0.0.0/8", "192.0.2.1-5", "192.0.2.*", "-iR", "0.0.0.0",
     "::", "224.0.0.1", "255.255.255.255", " 192.0.2.1", "192.0.2.1 192.0.2.2", "",
     "fe80::1%eth0;id"],
)  # fmt: skip
def test_anything_but_a_host_ip_is_refused(target):
    with pytest.raises(UnsafeTargetError):
        validate_targets([target])
    with pytest.raises(UnsafeTargetError):
        discovery_jobs([target], ROOT)


def test_targets_are_deduplicated_and_canonical():
    assert validate_targets(["192.0.2.1", "192.0.2.2", "192.0.2.1"]) == ["192.0.2.1", "192.0.2.2"]
    assert validate_targets(["2001:DB8::1", "2001:db8:0::1"]) == ["2001:db8::1"]
    with pytest.raises(ScanError):
        validate_targets([])


def test_discovery_argv_is_python_nmaps_order_with_no_dns_and_no_version_scan():
    job = discovery_job("tcp-discovery-01", ["192.0.2.1", "192.0.2.2"],
                        ROOT.selections[0], ROOT)
    assert job.argv("/usr/bin/nmap") == [
        "/usr/bin/nmap", "-oX", "-", "192.0.2.1", "192.0.2.2",
        "-n", "-Pn", "-v", "-sS", "--top-ports", "1000", "--min-hostgroup", "2",
    ]  # fmt: skip
    unpriv = make_settings("standard", privileged=False)
    job = discovery_job("d", ["192.0.2.1"], unpriv.selections[0], unpriv)
    assert job.argv()[3:] == ["192.0.2.1", "-p", "1-65535", "-n", "-Pn", "-v", "-sT",
                              "--min-hostgroup", "1"]


def test_version_argv_probes_only_the_given_ports_all_at_once():
    job = version_job("tcp-version-01-1", ["192.0.2.1", "192.0.2.2"], TCP, [443, 22, 80, 81],
                      ROOT, probes=5)
    assert job.argv() == [
        "nmap", "-oX", "-", "192.0.2.1", "192.0.2.2", "-p", "22,80-81,443",
        "-n", "-Pn", "-sS", "-sV", "--version-light", "--min-hostgroup", "2",
        "--min-parallelism", "20", "--host-timeout", "10m",
    ]  # fmt: skip
    many = version_job("v", ["192.0.2.1"], TCP, [22], replace(ROOT, version_light=False),
                       probes=180)
    assert many.args[many.args.index("--min-parallelism") + 1] == "180"
    assert many.args[many.args.index("--max-parallelism") + 1] == "180"  # above nmap's 100
    capped = version_job("v", ["192.0.2.1"], TCP, [22], ROOT, probes=5000)
    assert capped.args[capped.args.index("--min-parallelism") + 1] == "256"
    udp = version_job("v", ["192.0.2.1"], UDP, [161], ROOT, probes=1)
    assert udp.args[:4] == ("-n", "-Pn", "-sU", "-sV")


def test_ipv6_gets_dash_6_and_families_are_separate_processes():
    jobs = discovery_jobs(["192.0.2.1", "2001:db8::1", "192.0.2.2"], ROOT)
    assert [(j.name, j.targets) for j in jobs] == [
        ("tcp-discovery-01", ("192.0.2.1", "192.0.2.2")),
        ("tcp-discovery-02", ("2001:db8::1",)),
    ]
    assert "-6" not in jobs[0].args and "-6" in jobs[1].args
    with pytest.raises(ScanError, match="separate runs"):
        version_job("v", ["192.0.2.1", "2001:db8::1"], TCP, [22], ROOT, probes=2)


def test_discovery_batches_spread_over_the_discovery_slots_and_protocols():
    full = make_settings("full", privileged=True, batch_size=100)
    targets = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(250)]
    jobs = discovery_jobs(targets, full)
    # 250 hosts, at most 100 per process: three batches, each scanned for TCP and for UDP.
    assert [(j.name, len(j.targets)) for j in jobs] == [
        ("tcp-discovery-01", 84), ("udp-discovery-01", 84),
        ("tcp-discovery-02", 83), ("udp-discovery-02", 83),
        ("tcp-discovery-03", 83), ("udp-discovery-03", 83),
    ]
    assert [t for j in jobs if j.proto is TCP for t in j.targets] == targets
    # One discovery slot (the default): 50 hosts in one process.
    assert [len(j.targets) for j in discovery_jobs(targets[:50], ROOT)] == [50]
    # Two slots: two batches of 25 rather than one of 50, but a handful is not split.
    two = make_settings("quick", privileged=True, discovery_concurrency=2)
    assert [len(j.targets) for j in discovery_jobs(targets[:50], two)] == [25, 25]
    assert [len(j.targets) for j in discovery_jobs(targets[:5], two)] == [5]


def test_split_batches_are_even_and_keep_order():
    assert split_batches([], 3) == []
    assert split_batches(list("abcdefg"), 3) == [["a", "b", "c"], ["d", "e"], ["f", "g"]]
    assert split_batches(list("abcde"), 4) == [["a", "b", "c"], ["d", "e"]]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 600), st.integers(1, 300))
def test_split_batches_cover_every_target_once(n, size):
    batches = split_batches([str(i) for i in range(n)], size)
    assert [x for b in batches for x in b] == [str(i) for i in range(n)]
    assert max(len(b) for b in batches) <= size
    assert max(len(b) for b in batches) - min(len(b) for b in batches) <= 1


def test_dry_run_lines_are_the_real_discovery_argv_and_a_version_template():
    targets = ["192.0.2.1", "192.0.2.2"]
    full = make_settings("full", privileged=True, single_pass_max_hosts=0)
    lines = dry_run_lines(targets, full, "/usr/bin/nmap")
    commands = [line for line in lines if not line.startswith("#")]
    assert commands[:2] == [shlex.join(j.argv("/usr/bin/nmap"))
                            for j in discovery_jobs(targets, full)]
    assert all(" -n " in c and " -Pn " in c for c in commands)
    templates = [c for c in commands if "-sV" in c]
    assert len(templates) == 2 and "-sU" in templates[1]
    assert templates[0] == ("/usr/bin/nmap -oX - <hosts> -p <their-open-and-listed-ports> "
                            "-n -Pn -sS -sV "
                            "--min-hostgroup <N> --min-parallelism <P> --host-timeout 10m")
    assert lines[0].startswith("# profile full: TCP 1-65535, top 100 UDP ports; SYN scan")


# --- a handful of hosts: one nmap -sV per protocol -----------------------------------------


def test_single_pass_only_for_a_handful_of_hosts_that_fit_one_batch():
    four = [f"192.0.2.{i}" for i in range(1, 5)]
    assert single_pass(four, ROOT) and single_pass(four[:1], ROOT)
    assert not single_pass([*four, "192.0.2.5"], ROOT)  # 5 hosts: two phases
    assert not single_pass([], ROOT)
    assert not single_pass(four[:1], make_settings("quick", privileged=True,
                                                   single_pass_max_hosts=0))
    # --scan-batch-size 2: three hosts are two discovery processes, so not a single pass
    assert not single_pass(four[:3], make_settings("quick", privileged=True, batch_size=2))
    # each address family is its own process anyway: 2 + 1 hosts still fit
    assert single_pass([*four[:2], "2001:db8::1"], ROOT)
    assert single_pass(four, make_settings("quick", privileged=True, single_pass_max_hosts=8))


def test_single_pass_argv_is_discovery_plus_version_detection_in_one_process():
    job = single_job("tcp-scan-01", ["192.0.2.1", "192.0.2.2"], ROOT.selections[0], ROOT)
    assert job.phase == "single"
    assert job.argv("/usr/bin/nmap") == [
        "/usr/bin/nmap", "-oX", "-", "192.0.2.1", "192.0.2.2",
        "-n", "-Pn", "-v", "-sS", "-sV", "--version-light", "--top-ports", "1000",
        "--min-hostgroup", "2", "--host-timeout", "10m",
    ]  # fmt: skip
    standard = make_settings("standard", privileged=False,
                             extra_args=["-T4", "--version-intensity", "5"])
    job = single_job("tcp-scan-01", ["2001:db8::1"], standard.selections[0], standard)
    assert job.argv()[3:] == ["2001:db8::1", "-p", "1-65535", "-n", "-Pn", "-v", "-sT", "-sV",
                              "-6", "--min-hostgroup", "1", "--host-timeout", "10m", "-T4",
                              "--version-intensity", "5"]


def test_scan_jobs_choose_between_a_single_pass_and_discovery():
    full = make_settings("full", privileged=True)
    few = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    jobs = scan_jobs(few, full)
    assert [(j.name, j.phase, j.proto) for j in jobs] == [
        ("tcp-scan-01", "single", TCP), ("udp-scan-01", "single", UDP)]
    assert jobs[1].argv()[6:] == ["-n", "-Pn", "-v", "-sU", "-sV", "--top-ports", "100",
                                  "--min-hostgroup", "3", "--host-timeout", "10m"]
    # hosts whose own listings will add ports: two phases, whatever their number
    assert scan_jobs(few, full, steered=True) == discovery_jobs(few, full)
    many = [*few, "192.0.2.4", "192.0.2.5"]
    assert scan_jobs(many, full) == discovery_jobs(many, full)
    assert {j.phase for j in scan_jobs(many, full)} == {"discovery"}


def test_dry_run_of_a_handful_of_hosts_is_the_single_command_exactly():
    targets = ["192.0.2.1", "192.0.2.2"]
    quick = make_settings("quick", privileged=True)
    assert "-sV" not in dry_run_lines(targets, quick, "/usr/bin/nmap")[2]  # an audit: steered
    lines = dry_run_lines(targets, quick, "/usr/bin/nmap", steered=False)
    assert lines == [
        "# profile quick: top 1000 TCP ports; SYN scan",
        "# plus, per host, every port its own listing (ss/netstat, /proc/net, read over SSH "
        "meanwhile) shows on a non-loopback address beyond these: added to its -sV run, or a "
        "small -sV pass per group of hosts with equal lists (UDP ones with -sU -sV); a dry run "
        "cannot know them",
        "# 2 target(s), at most 4 for a single pass: one nmap -sV per protocol does "
        "discovery and service detection",
        "/usr/bin/nmap -oX - 192.0.2.1 192.0.2.2 -n -Pn -v -sS -sV --version-light "
        "--top-ports 1000 --min-hostgroup 2 --host-timeout 10m",
    ]


# --- discovery results -> version batches ------------------------------------------------


def test_only_open_ports_of_up_hosts_are_identified():
    h = host("192.0.2.1", {22: "", 80: ""}, listed={8443: "filtered", 25: "closed"})
    assert ports_to_identify(h, TCP) == {22, 80}
    assert ports_to_identify(h, UDP) == set()
    assert ports_to_identify(host("192.0.2.2", {22: ""}, status="down"), TCP) == set()
    u = host("192.0.2.3", {161: ""}, proto=UDP, listed={53: "open|filtered", 67: "closed"})
    assert ports_to_identify(u, UDP) == {53, 161}  # nmap's own -sV takes open|filtered too


def test_same_open_set_is_one_batch_and_hosts_without_open_ports_are_skipped():
    hosts = [host(f"192.0.2.{i}", {22: ""}) for i in range(1, 6)] + [host("192.0.2.9")]
    assert plan_version_batches(hosts, TCP, max_hosts=256) == [
        _batch([f"192.0.2.{i}" for i in range(1, 6)], [22], 5)]


def test_different_sets_share_a_process_when_the_extra_ports_are_closed():
    hosts = [host("192.0.2.1", {22: "", 80: ""}), host("192.0.2.2", {22: ""}),
             host("192.0.2.3", {22: ""}), host("192.0.2.4", {22: "", 2525: ""})]
    (batch,) = plan_version_batches(hosts, TCP, max_hosts=256)
    assert batch.targets == ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")
    assert batch.ports == (22, 80, 2525)
    assert batch.probes == 6  # what is open; the union's closed ports cost one RST each


def test_a_port_filtered_on_one_host_is_never_added_to_it():
    # 8443 is open on .1; .2 drops it (filtered), .3 drops everything it does not serve;
    # .4 serves 80 and answers "closed" on everything else.
    hosts = [host("192.0.2.1", {22: "", 8443: ""}),
             host("192.0.2.2", {22: ""}, listed={8443: "filtered"}),
             host("192.0.2.3", {22: ""}, unlisted="filtered"),
             host("192.0.2.4", {22: "", 80: ""})]
    batches = plan_version_batches(hosts, TCP, max_hosts=256)
    assert [(b.targets, b.ports) for b in batches] == [
        (("192.0.2.2", "192.0.2.3"), (22,)),
        (("192.0.2.1", "192.0.2.4"), (22, 80, 8443)),
    ]


def test_union_is_capped_and_zero_means_one_process_per_set():
    hosts = [host("192.0.2.1", {22: ""}), host("192.0.2.2", {22: "", 80: ""})]
    assert len(plan_version_batches(hosts, TCP, max_hosts=256, max_union=0)) == 2
    assert len(plan_version_batches(hosts, TCP, max_hosts=256, max_union=1)) == 2
    assert len(plan_version_batches(hosts, TCP, max_hosts=256, max_union=2)) == 1


def test_udp_sets_are_never_unioned():
    # A closed UDP port answers at the target's ICMP rate limit: adding one costs seconds.
    hosts = [host("192.0.2.1", {161: ""}, proto=UDP), host("192.0.2.2", {53: ""}, proto=UDP)]
    assert len(plan_version_batches(hosts, UDP, max_hosts=256)) == 2


def test_big_groups_are_split_by_hosts_and_by_probes():
    hosts = [host(f"10.0.{i // 200}.{i % 200 + 1}", {22: ""}) for i in range(600)]
    assert [len(b.targets) for b in plan_version_batches(hosts, TCP, max_hosts=256)] == [
        256, 256, 88]
    wide = [host(f"10.0.0.{i + 1}", dict.fromkeys(range(1, 101), "")) for i in range(12)]
    # 100 open ports each: at most 512 probes per process, so 5 hosts per process.
    assert [len(b.targets) for b in plan_version_batches(wide, TCP, max_hosts=256)] == [5, 5, 2]


addresses = st.integers(1, 40).map(lambda i: f"192.0.2.{i}")
open_sets = st.frozensets(st.sampled_from([22, 25, 80, 443, 2525, 8080, 40001]), max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(addresses, st.tuples(open_sets, st.sampled_from(["closed", "filtered"])),
                       max_size=30),
       st.integers(1, 12))
def test_every_open_port_is_identified_once_and_no_filtered_port_is_added(fleet, max_hosts):
    hosts = [host(a, dict.fromkeys(ports, ""), unlisted=unlisted)
             for a, (ports, unlisted) in fleet.items()]
    batches = plan_version_batches(hosts, TCP, max_hosts=max_hosts)
    seen = [t for b in batches for t in b.targets]
    assert len(seen) == len(set(seen))  # each host in one process
    assert set(seen) == {a for a, (ports, _) in fleet.items() if ports}
    for b in batches:
        assert len(b.targets) <= max_hosts
        assert b.probes == sum(len(fleet[t][0]) for t in b.targets)
        for t in b.targets:
            ports, unlisted = fleet[t]
            assert ports <= set(b.ports)
            if unlisted == "filtered":
                assert set(b.ports) == ports
    assert plan_version_batches(list(reversed(hosts)), TCP, max_hosts) == batches


def _batch(targets, ports, probes):
    from fleetaudit.scan.plan import VersionBatch

    return VersionBatch(targets=tuple(targets), ports=tuple(ports), probes=probes)


# --- merging the phases --------------------------------------------------------------------


def fixture_host(name: str) -> ExternalHost:
    (h,) = parse_nmap_xml((FIXTURES / name).read_bytes()).hosts
    return with_proto(h, TCP)


def test_merging_real_discovery_and_version_reports():
    found = fixture_host("discovery.xml")
    asked = ports_to_identify(found, TCP)
    assert asked == {42001, 42022, 42080, 42443}
    merged = merge_version(found, fixture_host("version-phase.xml"), TCP, asked)
    by_port = {p.port: p for p in merged.ports}
    assert (by_port[42022].service, by_port[42022].product) == ("ssh", "OpenSSH")
    assert (by_port[42443].service, by_port[42443].tunnel) == ("http", "ssl")
    assert by_port[42001].fingerprint_decoded is not None
    # discovery stays the authority on what was scanned and how the rest answered
    assert merged.extraports == found.extraports and merged.scanned == found.scanned
    assert merged.errors == [] and merged.started_at == found.started_at
    assert merged.finished_at is not None and found.finished_at is not None
    assert merged.finished_at >= found.finished_at


def test_a_version_scan_that_did_not_finish_keeps_the_open_ports():
    found = fixture_host("discovery.xml")
    asked = ports_to_identify(found, TCP)
    merged = merge_version(found, None, TCP, asked, "tcp scan failed (tcp-version-01-1): killed")
    assert merged.ports == found.ports
    assert merged.errors == [
        "service detection on tcp 42001,42022,42080,42443 did not finish (tcp scan failed "
        "(tcp-version-01-1): killed): open ports kept, services not identified"]
    timed_out = fixture_host("host-timeout.xml")
    merged = merge_version(found, timed_out, TCP, asked)
    assert merged.ports == found.ports and "--host-timeout" in merged.errors[0]


def test_a_port_that_closed_between_the_phases_is_said():
    found = host("192.0.2.1", {22: "", 80: ""})
    later = host("192.0.2.1", {22: ""}, listed={80: "closed"})
    merged = merge_version(found, later, TCP, {22, 80})
    assert [(p.port, p.state) for p in merged.ports] == [(22, "open"), (80, "closed")]
    assert merged.errors == ["80/tcp: open in discovery, closed in service detection "
                             "moments later"]
    unlisted = merge_version(found, host("192.0.2.1", {22: ""}), TCP, {22, 80})
    assert [(p.port, p.state) for p in unlisted.ports] == [(22, "open"), (80, "open")]
    assert "not listed by service detection" in unlisted.errors[0]


def test_tcp_and_udp_views_combine_into_one_host():
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    tcp = host("192.0.2.1", {22: ""}).model_copy(update={"started_at": t0, "finished_at": t0})
    udp = host("192.0.2.1", {161: ""}, proto=UDP, unlisted="open|filtered",
               scanned=(1, 200)).model_copy(update={"status": "up", "finished_at": t1,
                                                     "errors": ["x"]})
    both = combine_hosts([tcp, udp])
    assert [(p.proto, p.port) for p in both.ports] == [(TCP, 22), (UDP, 161)]
    assert both.unlisted_state(TCP) == "closed" and both.unlisted_state(UDP) == "open|filtered"
    assert both.was_scanned(UDP, 161) and not both.was_scanned(UDP, 201)
    assert (both.started_at, both.finished_at, both.errors) == (t0, t1, ["x"])
    down = host("192.0.2.1", status="down")
    assert combine_hosts([down, tcp]).status == "up"
    later = host("192.0.2.1", {22: ""}).model_copy(
        update={"ports": [ExternalPort(proto=TCP, port=22, state="open", service="ssh")]})
    assert combine_hosts([tcp, later]).ports[0].service == "ssh"  # later file wins


def test_extraports_without_a_protocol_get_the_runs_one():
    h = host("192.0.2.1").model_copy(update={"extraports": [ExtraPorts(state="closed",
                                                                        count=9)]})
    assert with_proto(h, UDP).extraports == [ExtraPorts(proto=UDP, state="closed", count=9)]


def test_summary_of_a_fleet_scan():
    run = parse_nmap_xml((FIXTURES / "sv-syn.xml").read_bytes())
    cut = parse_nmap_xml((FIXTURES / "three-hosts-truncated.xml").read_bytes())
    procs = [ProcessResult("tcp-discovery-01", "nmap a", run, None, b"<x/>"),
             ProcessResult("tcp-discovery-02", "nmap b", cut, None, b"<y/>"),
             ProcessResult("tcp-version-01-1", "nmap c", None, "nmap produced no XML", b"")]
    summary = summarize(procs, {"127.0.0.1": run.hosts[0]}, {"192.0.2.9": "cut short"},
                        profile="quick", privileged=True, scan_type="syn")
    assert summary.command == "nmap a" and summary.commands == ["nmap a", "nmap b", "nmap c"]
    assert summary.evidence == ["tcp-discovery-01.xml", "tcp-discovery-02.xml"]
    assert not summary.complete
    assert summary.errors[0].startswith("tcp-discovery-02: nmap XML ends early")
    assert summary.errors[-1] == "tcp-version-01-1: nmap produced no XML"
    assert (summary.profile, summary.privileged, summary.nmap_version) == ("quick", True, "7.93")
    ok = summarize(procs[:1], {}, {}, profile="quick", privileged=True, scan_type="syn")
    assert ok.complete and ok.errors == []
