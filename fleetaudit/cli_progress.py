"""An audit's progress as the command line shows it, on stderr (stdout is the report's path).

On a terminal, rich's live bars: the scan's phases (discovery, version detection: hosts
and ports done) and the collection (hosts done, failed, in flight), with elapsed time and
an estimate of what is left, and a line above them for each host as it is done. Off a
terminal (a pipe, a CI log), no bar and no cursor movement: one plain line per event.
`--quiet`: nothing until the final lines (errors and warnings still show); `-v`: every
nmap process and host as it starts, and each host's ports, findings and errors.

The words are fleetaudit.progress' events. Host names, addresses and messages are the
hosts' text: they reach rich only through fleetaudit.terminal (never markup), and no
bar's text is ever a host's.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from enum import IntEnum
from types import TracebackType
from typing import TYPE_CHECKING, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.text import Text

from fleetaudit.progress import AuditObserver, NmapStep, ScanPhase
from fleetaudit.terminal import err, plural, say, styled

if TYPE_CHECKING:
    from fleetaudit.models import HostResult

__all__ = ["Level", "LiveView", "PlainView", "QuietView", "View", "host_line", "show_host",
           "view_for"]

PHASE_WORDS = {ScanPhase.DISCOVERY: "discovery", ScanPhase.VERSION: "version detection",
               ScanPhase.SINGLE: "scan (one nmap -sV pass)"}


WIDE = 110  # columns from which the bars are drawn beside the counts


class _Time(ProgressColumn):
    """`0:12 elapsed, ~1:30 left` (rich's estimate from the pace so far, `?` until there is
    one); once done, the time it took."""

    def render(self, task: Task) -> Text:
        if task.finished or task.stop_time is not None:  # done, or the scan ended short
            took = task.finished_time if task.finished else task.elapsed
            return Text(f"{_clock(took)} elapsed", style="progress.elapsed")
        left = task.time_remaining
        return Text(f"{_clock(task.elapsed)} elapsed, "
                    f"{'~' + _clock(left) if left is not None else '?'} left",
                    style="progress.remaining")


def _clock(seconds: float | None) -> str:
    whole = int(seconds or 0)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Level(IntEnum):
    QUIET = 0
    NORMAL = 1
    VERBOSE = 2


def host_line(result: HostResult) -> Text:
    """`NAME (ADDRESS) STATUS N ports[: first error]`: the host's words, as text."""
    ok = result.status.value == "ok"
    detail = f": {result.errors[0].message}" if result.errors else ""
    return styled(result.name, " (", result.address, ") ",
                  ("ok" if ok else result.status.value, "green" if ok else "red"),
                  " ", plural(len(result.ports), "port"), detail)


def show_host(result: HostResult, to: Console = err) -> None:
    """One line for a finished host (indented, as under the `Auditing` line)."""
    to.print(Text("  ").append_text(host_line(result)))


def host_details(result: HostResult) -> list[Text]:
    """What `-v` adds under a host's line: every error, port and active finding."""
    lines = [styled("    error (", error.stage.value, "): ", error.message)
             for error in result.errors[1:]]
    for port in result.ports:
        ext = port.external
        seen = " ".join(x for x in (ext.service, ext.product, ext.version) if x) if ext else ""
        listeners = sorted({
            (listener.process.exe or listener.process.name or f"pid {listener.process.pid}")
            if listener.process is not None else f"{listener.address} (no process seen)"
            for listener in port.listeners})
        verdicts = ", ".join(dict.fromkeys(v.kind.value for v in port.verdicts))
        lines.append(styled(f"    {port.proto.value}/{port.port} ", seen or "-",
                            " <- ", ", ".join(listeners) or "no listener inside",
                            f" [{verdicts}]" if verdicts else ""))
    for finding in result.findings:
        if finding.active:
            where = f" {finding.proto.value}/{finding.port}" if finding.proto and finding.port \
                else ""
            lines.append(styled(f"    finding {finding.severity.value} {finding.rule}{where}: ",
                                finding.message))
    return lines


class _Phase:
    """One scan phase of one protocol: its hosts (each once, though a host may be in
    several of its processes), the ports it identifies, the open ports found."""

    def __init__(self, label: str) -> None:
        self.label = label  # "tcp discovery", "udp version detection"...
        self.hosts: set[str] = set()
        self.running: Counter[str] = Counter()  # a host's processes not ended yet
        self.done: set[str] = set()
        self.ports = 0
        self.ports_done = 0
        self.open_found = 0

    def planned(self, step: NmapStep) -> None:
        self.hosts.update(step.targets)

    def started(self, step: NmapStep) -> None:
        self.hosts.update(step.targets)
        self.running.update(step.targets)
        self.done.difference_update(step.targets)
        self.ports += step.ports

    def ended(self, step: NmapStep, open_found: int) -> None:
        self.running.subtract(step.targets)
        self.done.update(t for t in step.targets if self.running[t] <= 0)
        self.ports_done += step.ports
        self.open_found += open_found

    def counts(self) -> str:
        hosts = f"{len(self.done)}/{len(self.hosts)} hosts"
        if self.ports:  # -sV: the (host, port) pairs to identify are known
            return f"{hosts}, {self.ports_done}/{self.ports} ports"
        return f"{hosts}, {plural(self.open_found, 'open port')}"

    @staticmethod
    def key(step: NmapStep) -> str:
        return f"{step.proto} {PHASE_WORDS[step.phase]}"


class _Counts:
    """What the events add up to, for either view."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.hosts = 0
        self.done = 0
        self.failed = 0
        self.in_flight = 0
        self.phases: dict[str, _Phase] = {}  # in the order they appear

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def phase(self, step: NmapStep) -> _Phase:
        key = _Phase.key(step)
        if key not in self.phases:
            self.phases[key] = _Phase(key)
        return self.phases[key]

    def host_done(self, result: HostResult) -> None:
        self.done += 1
        self.failed += result.status.value != "ok"


class View(AuditObserver):
    """An observer that is also the `with` block the audit runs in (a live display has to
    be put away, even on Ctrl-C)."""

    def __init__(self, level: Level = Level.NORMAL) -> None:
        self.level = level
        self.counts = _Counts()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        return None

    def audit_started(self, hosts: int, scanned: int, contacted: int) -> None:
        self.counts.hosts = hosts


class QuietView(View):
    """`--quiet`: nothing as it goes."""

    def __init__(self) -> None:
        super().__init__(Level.QUIET)


class PlainView(View):
    """Off a terminal: one line per event, each whole (a log, a pipe, CI)."""

    def __init__(self, level: Level = Level.NORMAL, console: Console = err) -> None:
        super().__init__(level)
        self.console = console
        self.verbose = level >= Level.VERBOSE

    def _say(self, *parts: object) -> None:
        self.console.print(styled(f"[{self.counts.elapsed():.1f}s] ", *parts))

    def audit_started(self, hosts: int, scanned: int, contacted: int) -> None:
        super().audit_started(hosts, scanned, contacted)
        if self.verbose:
            self._say(f"{plural(hosts, 'host')}: {plural(contacted, 'host')} to collect, "
                      f"{plural(scanned, 'address', 'addresses')} to scan")

    def scan_planned(self, steps: Sequence[NmapStep]) -> None:
        for step in steps:
            self.counts.phase(step).planned(step)
        phases = ", ".join(dict.fromkeys(_Phase.key(step) for step in steps))
        self._say(f"scan: {phases} started: "
                  f"{plural(len(steps), 'nmap process', 'nmap processes')}")

    def nmap_started(self, step: NmapStep) -> None:
        self.counts.phase(step).started(step)
        if self.verbose:
            self._say(f"scan: {step.name} started ({plural(step.hosts, 'host')}): ",
                      step.command)

    def nmap_done(self, step: NmapStep, open_found: int, failure: str | None) -> None:
        phase = self.counts.phase(step)
        phase.ended(step, open_found)
        where = f"{phase.label} {phase.counts()}"
        if failure is not None:
            self._say(("scan: ", "red"), f"{step.name} failed: ", failure, f" ({where})")
        else:
            self._say(f"scan: {step.name} done: {plural(step.hosts, 'host')}, "
                      f"{plural(open_found, 'open port')} ({where})")

    def scan_done(self, failure: str | None) -> None:
        if failure is not None:
            self._say(("scan failed: ", "red"), failure)
        else:
            self._say("scan done")

    def host_started(self, name: str, address: str) -> None:
        self.counts.in_flight += 1
        if self.verbose:
            self._say(name, " (", address, "): connecting")

    def host_collected(self, name: str, failure: str | None) -> None:
        self.counts.in_flight -= 1
        if self.verbose:
            self._say(name, ": collected" if failure is None else ": not collected: ",
                      failure or "")

    def host_done(self, result: HostResult) -> None:
        counts = self.counts
        counts.host_done(result)
        self._say(f"{counts.done}/{counts.hosts} ", host_line(result))
        if self.verbose:
            for line in host_details(result):
                self.console.print(line)


class LiveView(View):
    """On a terminal: rich's bars, redrawn in place on stderr, host lines printed above."""

    def __init__(self, level: Level = Level.NORMAL, console: Console = err) -> None:
        super().__init__(level)
        self.verbose = level >= Level.VERBOSE
        self.console = console
        # markup=False: a column's text is ours (counts), but never let rich parse it.
        # The bar itself only where there is room: the counts say the same in 80 columns.
        bar = [BarColumn(bar_width=20)] if console.width >= WIDE else []
        self.bars = Progress(
            TextColumn("{task.description}", markup=False), *bar,
            TextColumn("{task.fields[counts]}", markup=False), _Time(),
            console=console, transient=False, redirect_stdout=False, redirect_stderr=False)
        self.hosts_bar: TaskID | None = None
        self.phase_bars: dict[str, TaskID] = {}  # by _Phase.key

    def __enter__(self) -> Self:
        self.bars.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.bars.stop()

    def _print(self, line: Text) -> None:
        self.console.print(line)  # the same console as the bars: printed above them

    def _hosts_counts(self) -> str:
        c = self.counts
        return (f"{c.done}/{c.hosts} done, {c.failed} failed, {c.in_flight} in flight")

    def audit_started(self, hosts: int, scanned: int, contacted: int) -> None:
        super().audit_started(hosts, scanned, contacted)
        self.hosts_bar = self.bars.add_task("hosts", total=hosts, counts=self._hosts_counts())

    def scan_planned(self, steps: Sequence[NmapStep]) -> None:
        for step in steps:
            self.counts.phase(step).planned(step)
            self._draw(self.counts.phase(step))

    def _draw(self, phase: _Phase) -> None:
        """A phase's bar: hosts for discovery, (host, port) pairs for -sV."""
        total, completed = ((phase.ports, phase.ports_done) if phase.ports
                            else (len(phase.hosts), len(phase.done)))
        bar = self.phase_bars.get(phase.label)
        if bar is None:
            self.phase_bars[phase.label] = self.bars.add_task(
                phase.label, total=total, completed=completed, counts=phase.counts())
        else:
            self.bars.update(bar, total=total, completed=completed, counts=phase.counts())

    def nmap_started(self, step: NmapStep) -> None:
        phase = self.counts.phase(step)
        phase.started(step)
        if self.verbose:
            self._print(styled(f"scan: {step.name} started ({plural(step.hosts, 'host')}): ",
                               step.command))
        self._draw(phase)

    def nmap_done(self, step: NmapStep, open_found: int, failure: str | None) -> None:
        phase = self.counts.phase(step)
        phase.ended(step, open_found)
        if failure is not None:
            self._print(styled(("scan: ", "red"), f"{step.name} failed: ", failure))
        elif self.verbose:
            self._print(styled(f"scan: {step.name} done: {plural(step.hosts, 'host')}, "
                               f"{plural(open_found, 'open port')}"))
        self._draw(phase)

    def scan_done(self, failure: str | None) -> None:
        for bar in self.phase_bars.values():
            self.bars.stop_task(bar)
        if failure is not None:
            self._print(styled(("scan failed: ", "red"), failure))

    def host_started(self, name: str, address: str) -> None:
        self.counts.in_flight += 1
        if self.verbose:
            self._print(styled("  ", name, " (", address, "): connecting"))
        self._update_hosts()

    def host_collected(self, name: str, failure: str | None) -> None:
        self.counts.in_flight -= 1
        if self.verbose:
            self._print(styled("  ", name, ": collected" if failure is None
                               else ": not collected: ", failure or ""))
        self._update_hosts()

    def host_done(self, result: HostResult) -> None:
        self.counts.host_done(result)
        self._print(Text("  ").append_text(host_line(result)))
        if self.verbose:
            for line in host_details(result):
                self._print(line)
        self._update_hosts()

    def _update_hosts(self) -> None:
        if self.hosts_bar is not None:
            self.bars.update(self.hosts_bar, completed=self.counts.done,
                             counts=self._hosts_counts())


def view_for(level: Level, console: Console = err) -> View:
    """The view for this output: quiet, bars on a terminal, plain lines elsewhere."""
    if level is Level.QUIET:
        return QuietView()
    if console.is_terminal:
        return LiveView(level, console)
    return PlainView(level, console)


def say_level(level: Level, *parts: object) -> None:
    """A progress line of the CLI's own (`Auditing ...`): not under --quiet."""
    if level > Level.QUIET:
        say(*parts)
