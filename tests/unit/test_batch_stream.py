"""A round's output cut into sections without a Python step per line (issue 13: 5,000
hosts) gives what the line-at-a-time definition gives, for any output, chunking, caps
and budget: forged markers, other nonces, markers mid-line, floods and partial lines."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetaudit.batch import Section, SectionStream, split_output

NONCE = "abcdef0123456789"
OTHER = "ffffffff00000000"


class LineByLine:
    """SectionStream as first written: every line looked at on its own (the definition)."""

    def __init__(self, nonce: str, caps: dict[str, int], *, default_cap: int,
                 budget: int) -> None:
        self.prefix = f"@@fa-{nonce}:".encode()
        self.marker = re.compile(
            rb"^@@fa-" + nonce.encode() + rb":(begin|end):([A-Za-z0-9_.-]+)(?::(-?\d+))?$")
        self.caps, self.default, self.room = caps, default_cap, budget
        self.partial = b""
        self.current: str | None = None
        self.text = bytearray()
        self.cut = False
        self.done: dict[str, Section] = {}
        self.begun: list[str] = []
        self.dropped = 0
        self.cut_here: list[str] = []

    def feed(self, data: bytes) -> None:
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            self.line(line, b"\n")

    def line(self, line: bytes, ending: bytes) -> None:
        if line.startswith(self.prefix):
            match = self.marker.match(line)
            if match is not None:
                kind, name = match.group(1).decode(), match.group(2).decode()
                if kind == "begin":
                    if self.current is not None:
                        self.finish(None)
                    self.current = name
                    self.begun.append(name)
                    return
                if name == self.current and match.group(3) is not None:
                    self.finish(int(match.group(3)))
                    return
        if self.current is None:
            self.dropped += len(line) + len(ending)
            return
        room = min(self.caps.get(self.current, self.default) - len(self.text), self.room)
        piece = line + ending
        if len(piece) > room:
            self.cut = True
            self.dropped += len(piece) - max(0, room)
            piece = piece[:max(0, room)]
        self.text += piece
        self.room -= len(piece)

    def finish(self, status: int | None) -> None:
        assert self.current is not None
        self.done[self.current] = Section(
            name=self.current,
            text=bytes(self.text).removesuffix(b"\n").decode("utf-8", errors="replace"),
            exit_status=None if self.cut else status)
        if self.cut:
            self.cut_here.append(self.current)
        self.current, self.text, self.cut = None, bytearray(), False

    def sections(self) -> dict[str, Section]:
        if self.partial:
            partial, self.partial = self.partial, b""
            self.line(partial, b"")
        if self.current is not None:
            self.done[self.current] = Section(
                name=self.current, text=bytes(self.text).decode("utf-8", errors="replace"),
                exit_status=None)
            if self.cut:
                self.cut_here.append(self.current)
            self.current, self.text, self.cut = None, bytearray(), False
        return self.done


def regex_split(output: str, nonce: str) -> dict[str, Section]:
    """split_output as first written: one regex anchored at every line start."""
    marker = re.compile(rf"^@@fa-{re.escape(nonce)}:(begin|end):([A-Za-z0-9_.-]+)(?::(-?\d+))?$",
                        re.MULTILINE)
    sections: dict[str, Section] = {}
    current: str | None = None
    start = 0
    for match in marker.finditer(output):
        kind, name, status = match.group(1), match.group(2), match.group(3)
        if kind == "begin":
            if current is not None:
                sections[current] = Section(
                    name=current, text=output[start:match.start()].removesuffix("\n"),
                    exit_status=None)
            current, start = name, match.end() + 1
        elif current == name and status is not None:
            sections[name] = Section(name=name,
                                     text=output[start:match.start()].removesuffix("\n"),
                                     exit_status=int(status))
            current = None
    if current is not None:
        sections[current] = Section(name=current, text=output[start:], exit_status=None)
    return sections


NAMES = st.sampled_from(["ss", "proc_net", "procs.0", "a", "b"])
# Pieces of output: plain text, real and forged markers, ends with and without status.
PIECES = st.one_of(
    st.text(alphabet="ab \t:@-f0\r\u00e9\ufffd", max_size=12),
    st.builds(lambda n: f"@@fa-{NONCE}:begin:{n}", NAMES),
    st.builds(lambda n, s: f"@@fa-{NONCE}:end:{n}:{s}", NAMES, st.integers(-2, 300)),
    st.builds(lambda n: f"@@fa-{NONCE}:end:{n}", NAMES),
    st.builds(lambda n: f"@@fa-{OTHER}:begin:{n}", NAMES),
    st.builds(lambda n: f"x@@fa-{NONCE}:begin:{n}", NAMES),
    st.builds(lambda n: f"@@fa-{NONCE}:begin:{n} trailing", NAMES),
    st.builds(lambda n: f"@@fa-{NONCE}extra:begin:{n}", NAMES),
    st.just(f"@@fa-{NONCE}:"),
)
OUTPUT = st.lists(st.tuples(PIECES, st.sampled_from(["\n", "\n", "", "\n\n"])), max_size=40)


@settings(max_examples=400, deadline=None)
@given(output=OUTPUT, cuts=st.lists(st.integers(0, 400), max_size=8),
       caps=st.dictionaries(NAMES, st.integers(0, 40), max_size=3),
       default_cap=st.integers(0, 60), budget=st.integers(0, 200))
def test_the_stream_cuts_as_the_line_by_line_definition(output, cuts, caps, default_cap,
                                                         budget):
    data = "".join(p + e for p, e in output).encode()
    got = SectionStream(NONCE, caps, default_cap=default_cap, budget=budget)
    want = LineByLine(NONCE, caps, default_cap=default_cap, budget=budget)
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(bounds):
        got.feed(data[a:b])
        want.feed(data[a:b])
        assert (got.begun, got.dropped, got.cut_here) == (want.begun, want.dropped,
                                                          want.cut_here)
    assert got.sections() == want.sections()
    assert (got.begun, got.dropped, got.cut_here) == (want.begun, want.dropped, want.cut_here)


@settings(max_examples=400, deadline=None)
@given(output=OUTPUT)
def test_split_output_cuts_as_the_regex_definition(output):
    text = "".join(p + e for p, e in output)
    assert split_output(text, NONCE) == regex_split(text, NONCE)


def test_a_flood_between_two_markers_is_kept_up_to_its_cap_and_counted():
    stream = SectionStream(NONCE, {"ss": 10}, default_cap=100, budget=1000)
    stream.feed(f"@@fa-{NONCE}:begin:ss\n".encode() + b"line of a flood\n" * 1000
                + f"\n@@fa-{NONCE}:end:ss:0\n".encode())
    [section] = stream.sections().values()
    assert section == Section(name="ss", text="line of a ", exit_status=None)
    assert stream.cut_here == ["ss"]
    assert stream.dropped == 16 * 1000 + 1 - 10
