"""Charts as SVG text, for pages and pictures that must open anywhere with
no network and no script: the rolling report (``rolling_report.py``) and
the demonstration's timeline (``demo_timeline.py``).

A chart is a plot area with an x and a y axis (ticks at 1-2-5 steps), its
series (step lines, lines, bars, markers), vertical lines and shaded bands
across it, optional lanes under it on the same time axis, and a legend.
Every element says what it is in its ``class`` (``axis``, ``series``,
``mark``, ``lane``...) and a series how many points it holds
(``data-points``), so that a test can read a rendered chart back. Every
mark has a ``<title>`` (the browser shows it on hover) with its figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

#: Distinct on white, and apart for the common colour blindnesses (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif"


def ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Tick values at a 1, 2 or 5 step covering [low, high]."""
    if high <= low:
        high = low + 1
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    values = []
    value = first
    while value <= high + step * 1e-9:
        values.append(round(value, 10))
        value += step
    return values


def label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-9 else "0"


def _a(text: object) -> str:
    return escape(str(text), quote=True)


def _columns(points: list[tuple[float, float]], scale) -> list[tuple[int, list[float]]]:
    """The points' values by pixel column, in order."""
    columns: list[tuple[int, list[float]]] = []
    for t, v in points:
        column = int(scale(t))
        if columns and columns[-1][0] == column:
            columns[-1][1].append(v)
        else:
            columns.append((column, [v]))
    return columns


@dataclass
class Lane:
    """A row under the plot on the same time axis: segments (x0, x1,
    colour, title, css class) and marks (x, symbol, colour, title, css
    class)."""

    name: str
    segments: list[tuple[float, float, str, str, str]] = field(default_factory=list)
    marks: list[tuple[float, str, str, str, str]] = field(default_factory=list)


class Chart:
    """One chart. `kind` names it for a reader of the page (``data-chart``)."""

    #: A lane: its bar, and its marks' labels on two rows where they would overlap.
    LANE_HEIGHT = 30

    def __init__(
        self,
        kind: str,
        title: str,
        x_label: str,
        y_label: str,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        width: int = 640,
        height: int = 230,
    ) -> None:
        self.kind, self.title, self.x_label, self.y_label = kind, title, x_label, y_label
        self.x_range = x_range
        top = y_range[1] if y_range[1] > y_range[0] else y_range[0] + 1
        self.y_ticks = ticks(y_range[0], top, 5)
        self.y_range = (y_range[0], max(top, self.y_ticks[-1]))
        self.x_ticks = [t for t in ticks(*x_range, 9) if x_range[0] <= t <= x_range[1]]
        self.width = width
        self.left, self.right, self.top = 58, 14, 30
        self.plot_height = height
        self.body: list[str] = []
        self.overlay: list[str] = []
        self.lanes: list[Lane] = []
        self.legend: list[tuple[str, str, str]] = []  # (label, colour, style: line/dash/bar/mark/band)
        self.height = 0  # the whole SVG's, once rendered

    # --- scales ---
    def x(self, value: float) -> float:
        low, high = self.x_range
        return self.left + (value - low) / (high - low or 1) * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        low, high = self.y_range
        return self.top + self.plot_height - (value - low) / (high - low or 1) * self.plot_height

    def _clip_x(self, value: float) -> float:
        return min(max(value, self.x_range[0]), self.x_range[1])

    # --- series ---
    def step(
        self, name: str, points: list[tuple[float, float]], colour: str, dash: str = "", legend: str | None = ""
    ) -> None:
        """A count that holds its value until the next point (open
        streams), from the first point to the last (a caller that wants it
        to run on to the end adds a last point there). Decimated to each
        pixel column's first, lowest, highest and last value: no peak is
        lost however many points there are."""
        low, high = self.x_range
        inside: list[tuple[float, float]] = []
        for t, v in points:
            if t < low:
                inside = [(low, v)]
            elif t <= high:
                inside.append((t, v))
        path: list[str] = []
        last: tuple[int, float] | None = None
        for column, values in _columns(inside, self.x):
            for value in (values[0], min(values), max(values), values[-1]):
                y = round(self.y(value), 1)
                if last is None:
                    path.append(f"M{column},{y}")
                elif (column, y) != last:
                    path.append(f"H{column}V{y}" if column != last[0] else f"V{y}")
                last = (column, y)
        self._path(name, path, len(points), colour, dash)
        self._key(legend, name, colour, "dash" if dash else "line")

    def line(
        self, name: str, points: list[tuple[float, float]], colour: str, dash: str = "", legend: str | None = ""
    ) -> None:
        path = [
            f"{'M' if n == 0 else 'L'}{self.x(t):.1f},{self.y(v):.1f}"
            for n, (t, v) in enumerate(p for p in points if self.x_range[0] <= p[0] <= self.x_range[1])
        ]
        self._path(name, path, len(points), colour, dash)
        self._key(legend, name, colour, "dash" if dash else "line")

    def _path(self, name: str, path: list[str], count: int, colour: str, dash: str) -> None:
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        self.body.append(
            f'<path class="series" data-series="{_a(name)}" data-points="{count}" d="{"".join(path)}" '
            f'fill="none" stroke="{colour}" stroke-width="1.8"{dashes}><title>{_a(name)}</title></path>'
        )

    def bars(
        self, name: str, bars: list[tuple[float, float, float, float]], colour: str, legend: str | None = ""
    ) -> None:
        """(x0, x1, value, base) each: a bar from `base` (stacked on
        another series) up by `value`; zero bars are not drawn."""
        rects = []
        for x0, x1, value, base in bars:
            if value <= 0:
                continue
            left, right = self.x(self._clip_x(x0)), self.x(self._clip_x(x1))
            top, bottom = self.y(base + value), self.y(base)
            rects.append(
                f'<rect x="{left + 0.5:.1f}" y="{top:.1f}" width="{max(right - left - 1, 1):.1f}" '
                f'height="{bottom - top:.1f}" fill="{colour}">'
                f"<title>{_a(name)}: {label(value)} from {label(x0)} to {label(x1)} s</title></rect>"
            )
        self.body.append(
            f'<g class="series bars" data-series="{_a(name)}" data-points="{sum(1 for b in bars if b[2] > 0)}">'
            + "".join(rects)
            + "</g>"
        )
        self._key(legend, name, colour, "bar")

    def markers(self, name: str, points: list[tuple[float, float, str]], colour: str, legend: str | None = "") -> None:
        """Crosses at (x, y), each with its title; a count beside it when
        the title starts with one above 1."""
        shapes = []
        labels: list[tuple[float, float, float]] = []  # (left, right, y) of the counts written so far
        for t, v, title in points:
            cx, cy = self.x(self._clip_x(t)), self.y(v)
            count = title.split(" ", 1)[0]
            beside = ""
            if count.isdigit() and int(count) > 1:
                # Moved down, row by row, off any count it would overwrite.
                left, right, y = cx + 7, cx + 7 + 7 * len(count), cy - 6
                while any(a < right + 8 and left < b + 8 and abs(y - c) < 12 for a, b, c in labels):
                    y += 13
                labels.append((left, right, y))
                beside = f'<text x="{left:.1f}" y="{y:.1f}" font-size="11" fill="{colour}">{_a(count)}</text>'
            shapes.append(
                f'<g class="mark" transform="translate({cx:.1f},{cy:.1f})"><title>{_a(title)}</title>'
                f'<path d="M-5,-5L5,5M-5,5L5,-5" stroke="{colour}" stroke-width="2.4"/></g>{beside}'
            )
        self.overlay.append(
            f'<g class="series markers" data-series="{_a(name)}" data-points="{len(points)}">'
            + "".join(shapes)
            + "</g>"
        )
        self._key(legend, name, colour, "mark")

    def vline(self, at: float, colour: str, title: str, dash: str = "4 3", css: str = "") -> None:
        if not self.x_range[0] <= at <= self.x_range[1]:
            return
        x = self.x(at)
        self.overlay.append(
            f'<line class="vline {css}" x1="{x:.1f}" x2="{x:.1f}" y1="{self.top}" y2="{self.top + self.plot_height}" '
            f'stroke="{colour}" stroke-width="1.4" stroke-dasharray="{dash}"><title>{_a(title)}</title></line>'
        )

    def band(self, x0: float, x1: float, colour: str, title: str) -> None:
        left, right = self.x(self._clip_x(x0)), self.x(self._clip_x(x1))
        self.body.insert(
            0,
            f'<rect class="band" x="{left:.1f}" y="{self.top}" width="{max(right - left, 1):.1f}" '
            f'height="{self.plot_height}" fill="{colour}" opacity="0.18"><title>{_a(title)}</title></rect>',
        )

    def key(self, text: str, colour: str, style: str) -> None:
        """A legend entry for what is not a series (lines, bands, lanes)."""
        self.legend.append((text, colour, style))

    def _key(self, legend: str | None, name: str, colour: str, style: str) -> None:
        if legend is not None:
            self.legend.append((legend or name, colour, style))

    # --- the whole ---
    def render(self) -> str:
        plot_bottom = self.top + self.plot_height
        lanes_top = plot_bottom + 34
        lanes_bottom = lanes_top + len(self.lanes) * self.LANE_HEIGHT
        x_title_y = lanes_bottom + (16 if self.lanes else 0) + 4
        legend_rows = self._legend_rows()
        height = x_title_y + 12 + len(legend_rows) * 18 + 6
        self.height = height
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{_a(self.kind)}" '
            f'width="{self.width}" height="{height}" viewBox="0 0 {self.width} {height}" role="img" '
            f'aria-label="{_a(self.title)}" style="{FONT}">',
            f"<title>{_a(self.title)}</title>",
            f'<rect width="{self.width}" height="{height}" fill="#fff"/>',
            f'<text x="{self.left}" y="18" font-size="13" font-weight="600">{_a(self.title)}</text>',
        ]
        # the y axis, with its grid
        y_axis = [
            f'<line class="domain" x1="{self.left}" x2="{self.left}" y1="{self.top}" y2="{plot_bottom}" stroke="#333"/>'
        ]
        for value in self.y_ticks:
            y = self.y(value)
            y_axis.append(
                f'<g class="tick"><line x1="{self.left - 4}" x2="{self.width - self.right}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="#e4e4e4"/><text x="{self.left - 7}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
                f"{label(value)}</text></g>"
            )
        mid = self.top + self.plot_height / 2
        y_axis.append(
            f'<text class="axis-title" transform="translate(14,{mid:.1f}) rotate(-90)" font-size="11" '
            f'text-anchor="middle">{_a(self.y_label)}</text>'
        )
        out.append('<g class="axis y-axis">' + "".join(y_axis) + "</g>")
        out += self.body
        # the x axis
        x_axis = [
            f'<line class="domain" x1="{self.left}" x2="{self.width - self.right}" y1="{plot_bottom}" '
            f'y2="{plot_bottom}" stroke="#333"/>'
        ]
        for value in self.x_ticks:
            x = self.x(value)
            x_axis.append(
                f'<g class="tick"><line x1="{x:.1f}" x2="{x:.1f}" y1="{plot_bottom}" y2="{plot_bottom + 4}" '
                f'stroke="#333"/><text x="{x:.1f}" y="{plot_bottom + 16}" font-size="11" text-anchor="middle">'
                f"{label(value)}</text></g>"
            )
        x_axis.append(
            f'<text class="axis-title" x="{(self.left + self.width - self.right) / 2:.1f}" y="{x_title_y + 8}" '
            f'font-size="11" text-anchor="middle">{_a(self.x_label)}</text>'
        )
        out.append('<g class="axis x-axis">' + "".join(x_axis) + "</g>")
        out += self.overlay
        for number, lane in enumerate(self.lanes):
            out.append(self._lane(lane, lanes_top + number * self.LANE_HEIGHT))
        out += self._legend(legend_rows, x_title_y + 26)
        out.append("</svg>")
        return "\n".join(out)

    def _lane(self, lane: Lane, top: float) -> str:
        parts = [
            f'<g class="lane" data-lane="{_a(lane.name)}">',
            f'<text x="{self.left - 7}" y="{top + 12}" font-size="11" text-anchor="end">{_a(lane.name)}</text>',
            f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{top + 8}" y2="{top + 8}" stroke="#ddd"/>',
        ]
        for x0, x1, colour, title, css in lane.segments:
            left, right = self.x(self._clip_x(x0)), self.x(self._clip_x(x1))
            faint = ' opacity="0.4"' if "unseen" in css.split() else ""  # not seen, only bounded
            parts.append(
                f'<rect class="{_a(css)}" x="{left:.1f}" y="{top + 2}" width="{max(right - left, 1.5):.1f}" '
                f'height="12" fill="{colour}"{faint}><title>{_a(title)}</title></rect>'
            )
        ends = [-1e9, -1e9]  # where each row's last label ends
        for at, symbol, colour, title, css in sorted(lane.marks, key=lambda m: m[0]):
            x = self.x(self._clip_x(at))
            row = 0 if x + 3 > ends[0] else 1 if x + 3 > ends[1] else 0
            width = 5.6 * len(symbol)
            # A label that would run off the chart's right edge goes left of its mark.
            left = x + 3 + width > self.width - 2
            anchor = ' text-anchor="end"' if left else ""
            if symbol:
                ends[row] = x + 3 + width + 4
            parts.append(
                f'<g class="{_a(css)}"><title>{_a(title)}</title>'
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + 16 + 10 * row}" stroke="{colour}" '
                'stroke-width="2"/>'
                + (
                    f'<text x="{x - 3 if left else x + 3:.1f}" y="{top + 12 + 11 * row}" font-size="10" '
                    f'fill="{colour}"{anchor}>{_a(symbol)}</text>'
                    if symbol
                    else ""
                )
                + "</g>"
            )
        parts.append("</g>")
        return "".join(parts)

    def _legend_rows(self) -> list[list[tuple[str, str, str]]]:
        rows: list[list[tuple[str, str, str]]] = [[]]
        used = 0
        room = self.width - self.left - self.right
        for entry in dict.fromkeys(self.legend):
            need = 26 + 6.2 * len(entry[0]) + 14
            if used + need > room and rows[-1]:
                rows.append([])
                used = 0
            rows[-1].append(entry)
            used += need
        return [row for row in rows if row]

    def _legend(self, rows: list[list[tuple[str, str, str]]], top: float) -> list[str]:
        out = ['<g class="legend">']
        for number, row in enumerate(rows):
            x = float(self.left)
            y = top + number * 18
            for text, colour, style in row:
                if style == "bar" or style == "band":
                    opacity = ' opacity="0.35"' if style == "band" else ""
                    swatch = f'<rect x="{x:.1f}" y="{y - 8}" width="18" height="10" fill="{colour}"{opacity}/>'
                elif style == "mark":
                    swatch = f'<path d="M{x + 4:.1f},{y - 8}l10,10m-10,0l10,-10" stroke="{colour}" stroke-width="2.2"/>'
                else:
                    dash = ' stroke-dasharray="4 3"' if style == "dash" else ""
                    swatch = (
                        f'<line x1="{x:.1f}" x2="{x + 18:.1f}" y1="{y - 3}" y2="{y - 3}" stroke="{colour}" '
                        f'stroke-width="2.2"{dash}/>'
                    )
                out.append(swatch + f'<text x="{x + 24:.1f}" y="{y + 1}" font-size="11">{_a(text)}</text>')
                x += 26 + 6.2 * len(text) + 14
        out.append("</g>")
        return out
