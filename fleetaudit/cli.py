"""The command line: parse options, call the layers, print where the report is. Nothing more.

Exit codes are fleetaudit.exitcodes' (the audit's own chosen by policy.exit_code).
Everything printed goes through fleetaudit.terminal (host text is never markup);
Ctrl-C and SIGTERM are fleetaudit.interrupt's, from the process's first line.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetaudit import __version__, interrupt, lab
from fleetaudit.cli_history import AuditHistory, HistoryOption
from fleetaudit.cli_history import register as register_history
from fleetaudit.cli_progress import Level, view_for
from fleetaudit.errors import ConfigError, FleetAuditError, LabError
from fleetaudit.exitcodes import ExitCode
from fleetaudit.host_key_policy import HostKeyPolicy
from fleetaudit.inventory import load_inventories
from fleetaudit.inventory.listing import as_ansible_list, as_table
from fleetaudit.inventory_script import run_inventory_script
from fleetaudit.models import (
    AuditResults,
    Connection,
    HostResult,
    HostStatus,
    Inventory,
    InventoryHost,
    ScanRun,
    Severity,
)
from fleetaudit.policy import Policy, apply_policy, baseline_policy, exit_code, load_policy
from fleetaudit.report import results_from_json
from fleetaudit.report.format_names import DEFAULT_FORMATS, Format, FormatChoice, parse_formats
from fleetaudit.report.journal import JOURNAL, Journal
from fleetaudit.report.journal import Start as JournalStart
from fleetaudit.resume import merge_resumed, unique_evidence
from fleetaudit.scan.command import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, Profile
from fleetaudit.terminal import help_options, out, plural, say, text

# asyncssh (orchestrator, preflight, ssh_target, transport, lab's machinery), nmap and
# jinja2 (report.write) load inside the commands that use them: `--help` and `--version`
# load none of them (tests/unit/test_cli_imports.py).
if TYPE_CHECKING:
    from fleetaudit.orchestrator import AuditOptions
    from fleetaudit.report import ReportPaths
    from fleetaudit.ssh_target import SSHTarget

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Audit what really listens on every open port of a fleet.",
                  **help_options())  # not on a terminal: plain, never wrapped
lab_app = typer.Typer(no_args_is_help=True, help="The lab fleet: SSH hosts in network namespaces.")
app.add_typer(lab_app, name="lab")


def _print_version(asked: bool) -> None:
    if asked:
        say(f"fleetaudit {__version__}", to=out)
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print fleetaudit's version and exit")] = False,
) -> None:
    """Audit what really listens on every open port of a fleet."""


def local_inventory() -> Inventory:
    """The embedded default: this machine, scanned on 127.0.0.1, read without SSH."""
    host = InventoryHost(name=socket.gethostname() or "localhost", address="127.0.0.1",
                         connection=Connection.LOCAL, groups=["local"])
    return Inventory(source="<local machine>", hosts=[host])


def _default_out() -> Path:
    return Path("reports") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _write(results: AuditResults, out_dir: Path,
           formats: Sequence[Format] = DEFAULT_FORMATS, *,
           evidence: Sequence[tuple[str, bytes]] = (), carry_over: bool = False,
           journal_kept: bool = False) -> ReportPaths:
    """The report, whole or not at all (ReportWriteError keeps the previous one).

    Written beside out_dir first: a signal then discards it. The swap, and the message
    saying it happened, are deferred as one step, so the line printed on a signal is
    true either way.
    """
    from fleetaudit.report.write import stage_report

    interrupt.message = (
        f"Interrupted: no report written; the finished hosts are kept in {out_dir / JOURNAL}: "
        f"run the same command with --resume {out_dir} to write it." if journal_kept else
        "Interrupted: no report written; any previous one is unchanged.")
    staged = stage_report(results, out_dir, formats, evidence=evidence, carry_over=carry_over)
    try:
        with interrupt.deferred():
            paths = staged.commit()
            interrupt.message = f"Interrupted after the report was written to {out_dir}."
    finally:
        staged.discard()
    return paths


def _audit(inventory: Inventory, options: AuditOptions, out_dir: Path,
           policy: Policy | None = None, fail_on: Severity | None = None, *,
           resume: bool = False, history: AuditHistory | None = None,
           level: Level = Level.NORMAL) -> int:
    """Audit, keeping each finished host in the run's journal (report.journal) as it
    comes, so that a run stopped part way is finished by `--resume out_dir`; its progress
    shown as `level` asks (fleetaudit.cli_progress)."""
    from fleetaudit.orchestrator import run_audit

    policy = policy or baseline_policy()
    started = datetime.now(UTC)
    kept: dict[str, HostResult] = {}
    earlier: list[tuple[str, bytes]] = []
    scans: list[ScanRun] = []
    if resume:
        journal, state = Journal.resume(out_dir)
        names = {h.name for h in inventory.hosts}
        kept = {name: host for name, host in state.hosts.items() if name in names}
        earlier, scans, started = state.evidence, state.scans, state.start.started_at
        if level > Level.QUIET:
            say(f"Resuming {out_dir}: {plural(len(kept), 'host')} done, "
                f"{len(inventory.hosts) - len(kept)} to audit")
        if state.start.inventory != inventory.source:
            say(("warning:", "yellow"), " that run audited ", state.start.inventory,
                "; hosts are matched by name")
        dropped = len(state.hosts) - len(kept)
        if dropped:
            say(("warning:", "yellow"), f" {plural(dropped, 'host')} of that run are not in this "
                "inventory: left out")
    else:
        journal = Journal.start(out_dir, JournalStart(
            tool_version=__version__, inventory=inventory.source, started_at=started,
            hosts=[h.name for h in inventory.hosts]))
    rest = Inventory(source=inventory.source,
                     hosts=[h for h in inventory.hosts if h.name not in kept])
    if level > Level.QUIET:
        say(f"Auditing {plural(len(rest.hosts), 'host')} from ", inventory.source)
    done = 0

    def finished(result: HostResult) -> None:
        nonlocal done
        done += 1
        interrupt.message = (
            f"Interrupted: audit stopped, its nmap processes too; "
            f"{plural(done + len(kept), 'finished host')} kept in {out_dir / JOURNAL}: run "
            "the same command with "
            f"--resume {out_dir} to audit the rest.")

    interrupt.message = ("Interrupted: audit stopped, its nmap processes too; no host "
                         "had finished: no report written.")
    try:
        # Judged by run_audit, before anything is written: every format carries the findings.
        with view_for(level) as view:  # put away before anything else is printed
            outcome = interrupt.run(run_audit(rest, options, on_host_done=finished,
                                              policy=policy, journal=journal,
                                              progress=view)) if rest.hosts else None
    except (FleetAuditError, interrupt.Interrupted):
        if not resume and done == 0:  # refused, or stopped, before any host: no run to keep
            journal.discard()
        raise
    finally:
        journal.close()
    if resume:
        results = merge_resumed(
            inventory, kept, outcome.results if outcome else None, started_at=started,
            earlier_scans=scans, policy=policy, today=date.today(),
            tool_version=__version__, finished_at=datetime.now(UTC))
        evidence = unique_evidence([*earlier, *(outcome.nmap_xml_files if outcome else [])])
    else:
        assert outcome is not None or not inventory.hosts
        results = outcome.results if outcome else apply_policy(AuditResults(
            tool_version=__version__, inventory=inventory.source, started_at=started,
            finished_at=datetime.now(UTC)), policy, date.today())
        evidence = outcome.nmap_xml_files if outcome else []
    if history is not None:  # what changed since the last run: in every format
        results = history.compare(results)
    paths = _write(results, out_dir, tuple(Format), evidence=evidence, journal_kept=True)
    failed = [h for h in results.hosts if h.status is not HostStatus.OK]
    if results.scan is None:
        say(("No scan result: the external view is missing.", "yellow"))
    elif results.scan.ignored_hosts:
        ignored = results.scan.ignored_hosts
        say(f"{plural(len(ignored), 'host')} in the nmap XML not in the inventory, ignored: ",
            ", ".join(ignored))
    active = sum(f.active for h in results.hosts for f in h.findings)
    fleet = next(c for c in results.compliance if c.group is None)
    say("policy ", results.policy, f": {plural(active, 'active finding')}, "
        f"{fleet.hosts_compliant}/{plural(fleet.hosts_total, 'host')} compliant")
    say("results: ", paths.results_json)
    if paths.index_html is not None:
        say(paths.index_html, to=out)
    if failed:
        say((f"{plural(len(failed), 'host')} not fully audited: see the report.", "yellow"))
    code = exit_code(results, fail_on)
    # Recorded once the report is written: a store that fails never loses the audit.
    return history.record(results, out_dir, code) if history is not None else code


def _fail(exc: FleetAuditError) -> typer.Exit:
    # Never markup: a policy error's field reads "allowed_ports[1].port", and a host's
    # error message is whatever the host said.
    say(("error:", "red"), " ", str(exc))
    return typer.Exit(ExitCode.CONFIG)


@app.command()
def audit(
    inventory: Annotated[list[Path] | None, typer.Argument(
        help="Ansible inventories (INI, YAML, folders, scripts, saved --list JSON); several "
             "merge as repeated -i do. Without one, audit this machine (no SSH).")] = None,
    limit: Annotated[str | None, typer.Option(
        "--limit", "-l", help="Ansible host pattern: web,db  web:&prod  all:!web03  ~db\\d+")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Where results.json and index.html go (default: reports/<time>)")
    ] = None,
    known_hosts: Annotated[Path | None, typer.Option(
        help="known_hosts file (default: ~/.ssh/known_hosts)")] = None,
    host_key_policy: Annotated[HostKeyPolicy, typer.Option(
        help="strict: only known keys; accept-new: record unknown hosts' keys; off: no check"
    )] = HostKeyPolicy.STRICT,
    concurrency: Annotated[int, typer.Option(min=1, max=1000,
                                             help="Hosts collected at once")] = 50,
    profile: Annotated[Profile, typer.Option(
        help="quick: top 1000 TCP ports; standard: all 65535 TCP ports; full: standard + top "
             "100 UDP ports (root). Each host's own listed ports (non-loopback, TCP and "
             "UDP) are always added")] = Profile.QUICK,
    ports: Annotated[str | None, typer.Option(
        help="nmap port list, replacing the profile's (e.g. 22,80,1-1024 or T:22,U:53); "
             "each host's own listed ports are still added")
    ] = None,
    nmap_xml: Annotated[list[Path] | None, typer.Option(
        "--nmap-xml", metavar="FILE",
        help="Use this nmap XML report (repeatable) instead of scanning; matched by address")
    ] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the nmap command lines and exit: no scan, no SSH")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No progress: only errors, warnings and the final lines")
    ] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="More progress: each nmap process and host as it starts, "
                                "each host's ports, findings and errors")] = False,
    scan_concurrency: Annotated[int, typer.Option(
        min=1, max=64, help="nmap processes at once")] = DEFAULT_CONCURRENCY,
    scan_batch_size: Annotated[int, typer.Option(
        min=1, max=4096, help="Hosts per nmap process")] = DEFAULT_BATCH_SIZE,
    nmap_arg: Annotated[list[str] | None, typer.Option(
        "--nmap-arg", metavar="OPTION",
        help="Extra nmap timing/intensity option from an allowlist (repeatable), "
             "e.g. -T4 or --max-retries=2, each given as --nmap-arg=OPTION")] = None,
    connect_timeout: Annotated[float, typer.Option(
        min=1.0, help="TCP connect timeout, s; the SSH login after it (banner, key exchange, "
                      "authentication) has its own limit, 60 s")] = 10.0,
    ssh_config: Annotated[Path | None, typer.Option(
        "--ssh-config", metavar="FILE",
        help="OpenSSH client config (default: ~/.ssh/config if present): Host, HostName, "
             "User, Port, IdentityFile, ProxyJump, UserKnownHostsFile...")] = None,
    policy_file: Annotated[Path | None, typer.Option(
        "--policy", metavar="FILE",
        help="Compliance policy (YAML) (default: the built-in baseline)")] = None,
    fail_on: Annotated[Severity | None, typer.Option(
        "--fail-on", metavar="SEVERITY", case_sensitive=False,
        help="Exit 1 when an active finding is at or above this severity (critical, high, "
             "medium, low, info) (default: findings do not change the exit code)")] = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", metavar="RUN_DIR",
        help="Finish a run that was stopped (crash, kill, Ctrl-C): audit only the hosts its "
             "journal lacks, then write the whole report in RUN_DIR")] = None,
    history: HistoryOption = None,
    compare_to: Annotated[str | None, typer.Option(
        "--compare-to", metavar="RUN|none",
        help="Compare with this run (a run id, a results.json or a run folder) instead of "
             "the inventory's previous run in the history; 'none': no comparison")] = None,
    fail_on_change: Annotated[bool, typer.Option(
        "--fail-on-change",
        help="Exit 1 when anything new opened or a binary changed since the run compared "
             "with, whatever the policy says (a nightly job's check)")] = False,
    keep_runs: Annotated[int | None, typer.Option(
        "--keep-runs", min=1, help="After recording, keep only the inventory's N newest runs")
    ] = None,
    keep_days: Annotated[int | None, typer.Option(
        "--keep-days", min=1, help="After recording, drop the inventory's runs older than D "
                                   "days")] = None,
) -> None:
    """Scan the fleet from outside, look inside every host, and reconcile the two."""
    from fleetaudit.orchestrator import AuditOptions, audit_dry_run
    from fleetaudit.transport import SSHOptions

    try:
        inv = _load(inventory, limit) if inventory else local_inventory()
        policy = load_policy(policy_file) if policy_file else baseline_policy()
    except ConfigError as exc:
        raise _fail(exc) from exc
    options = AuditOptions(
        ssh=SSHOptions(known_hosts=known_hosts, host_key_policy=host_key_policy,
                       connect_timeout=connect_timeout, ssh_config=ssh_config),
        concurrency=concurrency, ports=ports, profile=profile.value,
        scan_concurrency=scan_concurrency, nmap_xml=tuple(nmap_xml or ()),
        scan_batch_size=scan_batch_size, nmap_args=tuple(nmap_arg or ()),
        redact_arguments=tuple(policy.document.redact_arguments),
    )
    try:
        if dry_run:
            for line in interrupt.run(audit_dry_run(inv, options)):
                say(line, to=out)
            raise typer.Exit(ExitCode.OK)
        if resume is not None and out_dir is not None and out_dir != resume:
            raise ConfigError("--resume RUN_DIR writes the report in RUN_DIR: drop --out")
        if quiet and verbose:
            raise ConfigError("--quiet and --verbose: choose one")
        run_dir = resume or out_dir or _default_out()
        _precheck(inv, run_dir, resume=resume is not None, inventory_paths=inventory or [],
                  options=options)
        code = _audit(inv, options, run_dir, policy, fail_on,
                      resume=resume is not None, history=AuditHistory(
                          history, compare_to, fail_on_change, keep_runs, keep_days),
                      level=Level.QUIET if quiet else Level.VERBOSE if verbose else Level.NORMAL)
    except FleetAuditError as exc:
        raise _fail(exc) from exc
    raise typer.Exit(code)


def _precheck(inv: Inventory, run_dir: Path, *, resume: bool,
              inventory_paths: Sequence[Path], options: AuditOptions) -> None:
    """Stop (exit 2) on every mistake that can be seen before a host is contacted."""
    from fleetaudit.precheck import problems

    found = problems(inv, out_dir=run_dir, resume=resume, inventory_paths=inventory_paths,
                     known_hosts=options.ssh.known_hosts,
                     host_key_policy=options.ssh.host_key_policy,
                     ssh_config=options.ssh.ssh_config, nmap_xml=options.nmap_xml,
                     nmap_path=options.nmap_path)
    if found:
        for problem in found:
            say(("error:", "red"), " ", problem)
        say("Nothing was scanned or contacted: fix "
            f"{'this' if len(found) == 1 else 'these'} and run the same command again.")
        raise typer.Exit(ExitCode.CONFIG)


def _load(paths: Sequence[Path], limit: str | None) -> Inventory:
    inventory = load_inventories(list(paths), limit=limit, run_script=run_inventory_script)
    for warning in inventory.warnings:
        say("warning: ", warning)
    return inventory


@app.command("inventory")
def inventory_command(
    inventory: Annotated[list[Path], typer.Argument(
        help="Ansible inventories: INI, YAML, folders, scripts, saved --list JSON")],
    limit: Annotated[str | None, typer.Option("--limit", "-l", help="Ansible host pattern")
                     ] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="ansible-inventory --list's JSON, plus fleetaudit's reading of "
                       "each host under _meta.fleetaudit")] = False,
    ssh_config: Annotated[Path | None, typer.Option(
        "--ssh-config", metavar="FILE",
        help="OpenSSH client config (default: ~/.ssh/config if present)")] = None,
) -> None:
    """Show the inventory as fleetaudit reads it. Nothing is contacted, no name resolved."""
    from rich.table import Column, Table

    from fleetaudit.ssh_target import local_user, resolve_target

    try:
        inv = _load(inventory, limit)
        targets = {h.name: resolve_target(h, ssh_config) for h in inv.hosts
                   if h.connection is Connection.SSH and not h.unresolved}
    except ConfigError as exc:
        raise _fail(exc) from exc
    if as_json:
        listing = as_ansible_list(inv)
        for name, target in targets.items():
            listing["_meta"]["fleetaudit"][name]["ssh"] = target.model_dump(mode="json")
        # Plain stdout: rich would spend seconds laying out a 5,000-host document.
        sys.stdout.write(json.dumps(listing, indent=4, sort_keys=True) + "\n")
        raise typer.Exit(0)
    table = Table(*(Column(name, overflow="fold") for name in (
        "host", "groups", "address", "port", "user", "key", "become", "jump")),
        box=None, header_style="bold")
    for host, row in zip(inv.hosts, as_table(inv), strict=True):
        seen = targets.get(host.name)
        if seen is not None:  # what ssh_config makes of it, where it says more
            row[2] = seen.host if seen.host == host.address \
                else f"{host.address} -> {seen.host}"
            row[3] = str(seen.port)
            row[4] = seen.user or f"({local_user()})"
            row[7] = seen.jump_spec or "-"
        table.add_row(*(text(cell) for cell in row))
    out.print(table)
    for host in inv.hosts:
        for field, origin in sorted(host.origins.items()):
            say(f"  {host.name} {field}: {origin}", to=out)
        said = _ssh_config_said(host, targets.get(host.name))
        if said:
            say(f"  {host.name} from ssh_config: {said}", to=out)
        for note in host.notes:
            say(f"  {host.name} note: {note}", to=out)
    say(f"{plural(len(inv.hosts), 'host')}, {plural(len(inv.groups), 'group')} from ",
        inv.source, to=out)
    raise typer.Exit(ExitCode.OK)


def _ssh_config_said(host: InventoryHost, target: SSHTarget | None) -> str:
    """What ssh_config, not the inventory, decided for this host."""
    if target is None:
        return ""
    said = []
    if target.host != host.address:
        said.append(f"HostName {target.host}")
    if host.port is None and target.port != 22:
        said.append(f"Port {target.port}")
    if host.user is None and target.user:
        said.append(f"User {target.user}")
    if host.jump is None and target.jumps:
        said.append(f"ProxyJump {target.jump_spec}")
    return ", ".join(said)


@app.command()
def check(
    inventory: Annotated[list[Path], typer.Argument(help="Ansible inventories (as audit)")],
    limit: Annotated[str | None, typer.Option("--limit", "-l", help="Ansible host pattern")
                     ] = None,
    known_hosts: Annotated[Path | None, typer.Option(
        help="known_hosts file (default: ~/.ssh/known_hosts)")] = None,
    host_key_policy: Annotated[HostKeyPolicy, typer.Option(
        help="strict | accept-new | off")] = HostKeyPolicy.STRICT,
    concurrency: Annotated[int, typer.Option(min=1, max=1000, help="Hosts checked at once")] = 50,
    connect_timeout: Annotated[float, typer.Option(
        min=1.0, help="TCP connect timeout, s; the SSH login after it (banner, key exchange, "
                      "authentication) has its own limit, 60 s")] = 10.0,
    ssh_config: Annotated[Path | None, typer.Option(
        "--ssh-config", metavar="FILE",
        help="OpenSSH client config (default: ~/.ssh/config if present): Host, HostName, "
             "User, Port, IdentityFile, ProxyJump, UserKnownHostsFile...")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Before an audit: can each host be reached, what may we run, what will we not see."""
    from fleetaudit.preflight import render_text, run_preflight
    from fleetaudit.transport import SSHOptions

    try:
        inv = _load(inventory, limit)
    except ConfigError as exc:
        raise _fail(exc) from exc
    ssh = SSHOptions(known_hosts=known_hosts, host_key_policy=host_key_policy,
                     connect_timeout=connect_timeout, ssh_config=ssh_config)
    interrupt.message = "Interrupted: check stopped."
    result = interrupt.run(run_preflight(inv, ssh, concurrency=concurrency))
    say(result.model_dump_json(indent=2) + "\n" if as_json else render_text(result),
        to=out, lines=True, end="")
    raise typer.Exit(ExitCode.OK if result.complete else ExitCode.INCOMPLETE)


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="A results.json from an earlier audit")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where to write the report")],
    formats: Annotated[list[FormatChoice] | None, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="Report format; repeat for several, 'all' for every one (default: html and json)",
    )] = None,
) -> None:
    """Re-render a report from a saved results.json, without auditing again."""
    try:
        text = results.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(ConfigError(f"cannot read {results}: {exc}")) from exc
    # Re-rendering a run in its own folder keeps the files of it not rendered again.
    in_place = os.path.realpath(results.parent) == os.path.realpath(out_dir)
    try:
        chosen = parse_formats(formats or [FormatChoice.HTML, FormatChoice.JSON])
        paths = _write(results_from_json(text), out_dir, chosen, carry_over=in_place)
    except FleetAuditError as exc:
        raise _fail(exc) from exc
    for path in paths.files.values():
        say(path, to=out)


@app.command()
def demo(
    hosts: Annotated[int, typer.Option(min=1, max=250, help="Lab hosts to bring up")] = 4,
    out_dir: Annotated[Path, typer.Option("--out", "-o")] = Path("reports/demo"),
    keep_lab: Annotated[bool, typer.Option(help="Leave the lab running afterwards")] = False,
) -> None:
    """Bring up the lab fleet, audit it, tear it down; as non-root, audit this machine."""
    from fleetaudit.orchestrator import AuditOptions
    from fleetaudit.transport import SSHOptions

    if os.geteuid() != 0:
        say("Not root: a lab fleet needs network namespaces, so this demo audits "
            "the local machine instead (nmap on 127.0.0.1, commands run locally).")
        try:
            code = _audit(local_inventory(), AuditOptions(), out_dir)
        except FleetAuditError as exc:
            raise _fail(exc) from exc
        raise typer.Exit(code)
    try:
        info = lab.up(hosts, internal_plants=hosts >= 3)
    except LabError as exc:
        raise _fail(exc) from exc
    try:
        inv = _load([info.inventory], None)
        options = AuditOptions(ssh=SSHOptions(known_hosts=info.known_hosts))
        code = _audit(inv, options, out_dir)
    except FleetAuditError as exc:
        raise _fail(exc) from exc
    finally:
        if not keep_lab:
            lab.down()
    raise typer.Exit(code)


@lab_app.command("up")
def lab_up(
    count: Annotated[int, typer.Argument(min=1, max=1000, help="Number of hosts")] = 4,
    internal_plants: Annotated[bool, typer.Option(
        help="Also plant the internal-view cases on the last three hosts (3+ hosts)")] = False,
    state_dir: Annotated[Path, typer.Option(help="Where the lab keeps its state")] = (
        lab.DEFAULT_STATE_DIR),
) -> None:
    """Create COUNT SSH hosts in network namespaces on 10.99.0.0/16, with planted cases."""
    try:
        info = lab.up(count, state_dir=state_dir, internal_plants=internal_plants)
    except LabError as exc:
        raise _fail(exc) from exc
    say(f"{len(info.hosts)} lab hosts up on bridge {info.bridge}")
    say(f"audit them with: fleetaudit audit {info.inventory} --known-hosts {info.known_hosts}")
    say(info.inventory, to=out)


@lab_app.command("down")
def lab_down(
    state_dir: Annotated[Path, typer.Option(help="Where the lab keeps its state")] = (
        lab.DEFAULT_STATE_DIR),
) -> None:
    """Tear down exactly what `lab up` created."""
    try:
        lab.down(state_dir)
    except LabError as exc:
        raise _fail(exc) from exc
    say("lab down")


# Last, so that `--help` lists audit, inventory, check, report and demo first.
register_history(app)  # history, history import, diff
