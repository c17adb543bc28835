"""Bar charts as geometry for inline SVG: computed here, drawn by the template, no JS library.

Only numbers this module computes and CSS class names from a fixed set reach SVG
attributes; labels (a rule name is policy data) are text content, autoescaped.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 560
LABEL_WIDTH = 196
TOTAL_WIDTH = 46
BAR_HEIGHT = 16
PITCH = 24
LEGEND_HEIGHT = 22
LEGEND_SLOT = 86  # legend entries sit in equal slots: glyph widths vary too much to guess
MAX_LABEL = 28
MAX_BARS = 12
_CHAR = 7.0  # a generous glyph width at the chart's 11px font, for layout estimates


@dataclass(frozen=True)
class Segment:
    x: float
    width: float
    css: str
    name: str
    count: int
    # Whether the count fits inside the segment as a label.
    labelled: bool

    @property
    def middle(self) -> float:
        return round(self.x + self.width / 2, 1)


@dataclass(frozen=True)
class Bar:
    label: str
    full_label: str
    y: int
    segments: list[Segment]
    total: int
    total_x: float

    @property
    def text_y(self) -> int:
        return self.y + BAR_HEIGHT - 4


@dataclass(frozen=True)
class LegendItem:
    x: float
    css: str
    name: str


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    label_width: int
    bar_height: int
    bars: list[Bar]
    legend: list[LegendItem]
    empty: str | None
    more: int


def bar_chart(
    title: str,
    rows: list[tuple[str, list[tuple[str, str, int]]]],
    *,
    legend: list[tuple[str, str]] | None = None,
    sort: bool = True,
    empty: str | None = None,
    max_bars: int = MAX_BARS,
) -> Chart:
    """Horizontal bars, one per (label, [(css, name, count)...]) row, segments stacked.

    Rows are sorted by total, largest first, unless `sort` is False; only the
    first `max_bars` are drawn and `more` says how many were left out.
    """
    rows = [(label, [s for s in segs if s[2] > 0]) for label, segs in rows]
    rows = [(label, segs) for label, segs in rows if segs]
    if sort:
        rows = sorted(rows, key=lambda r: -sum(c for _, _, c in r[1]))
    shown, more = rows[:max_bars], max(0, len(rows) - max_bars)
    top = LEGEND_HEIGHT if legend and shown else 4
    area = WIDTH - LABEL_WIDTH - TOTAL_WIDTH
    scale = max((sum(c for _, _, c in segs) for _, segs in shown), default=1)
    bars = []
    for i, (label, segs) in enumerate(shown):
        x = float(LABEL_WIDTH)
        segments = []
        for css, name, count in segs:
            width = max(2.0, round(area * count / scale, 1))
            fits = width >= _CHAR * len(str(count)) + 6
            segments.append(Segment(round(x, 1), width, css, name, count, fits))
            x += width
        bars.append(
            Bar(
                label=label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…",
                full_label=label,
                y=top + i * PITCH,
                segments=segments,
                total=sum(s.count for s in segments),
                total_x=round(x + 6, 1),
            )
        )
    items = []
    if legend and shown:
        x = 0.0
        for css, name in legend:
            items.append(LegendItem(round(x, 1), css, name))
            x += LEGEND_SLOT
    return Chart(
        title=title,
        width=WIDTH,
        height=top + len(shown) * PITCH,
        label_width=LABEL_WIDTH,
        bar_height=BAR_HEIGHT,
        bars=bars,
        legend=items,
        empty=None if shown else (empty or "Nothing to chart."),
        more=more,
    )
