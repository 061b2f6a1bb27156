"""Inline SVG charts for the dashboard: no JavaScript, no external files, readable in any browser."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

W, H, PAD = 640, 180, 28


def _frame(body: str, title: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{escape(title)}</title>'
            f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 4}" y2="{H - PAD}" stroke="#999"/>{body}</svg>')


def _x(i: int, n: int) -> float:
    step = (W - PAD - 8) / max(n, 1)
    return PAD + step * i + step / 2


def _y(v: float, top: float) -> float:
    return H - PAD - (H - 2 * PAD) * (v / top if top > 0 else 0)


def bars(labels: Sequence[str], values: Sequence[float], title: str, fmt: str = "{:.0f}") -> str:
    """One bar per label, its value written above it."""
    top = max([v for v in values if v is not None] + [0]) or 1
    step = (W - PAD - 8) / max(len(values), 1)
    parts = []
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        x = _x(i, len(values))
        if v is not None:
            y = _y(v, top)
            parts.append(f'<rect x="{x - step * 0.35:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" '
                         f'height="{H - PAD - y:.1f}" fill="#4a78c2"/>'
                         f'<text x="{x:.1f}" y="{y - 3:.1f}" font-size="10" text-anchor="middle">'
                         f'{escape(fmt.format(v))}</text>')
        parts.append(f'<text x="{x:.1f}" y="{H - PAD + 13}" font-size="10" text-anchor="middle">'
                     f'{escape(label)}</text>')
    return _frame("".join(parts), title)


def lines(labels: Sequence[str], series: dict[str, Sequence[float | None]], title: str, *,
          top: float | None = None, threshold: float | None = None, unit: str = "") -> str:
    """A line per series (gaps where a value is missing), an optional dashed threshold line."""
    values = [v for vs in series.values() for v in vs if v is not None]
    top = top or max(values + [threshold or 0, 1e-9]) * 1.1
    colours = ("#4a78c2", "#d9822b", "#3a9a5b", "#b04a4a")
    parts = [f'<text x="2" y="{PAD - 12}" font-size="10">{escape(f"{top:.3g}{unit}")}</text>']
    if threshold is not None:
        y = _y(threshold, top)
        parts.append(f'<line x1="{PAD}" y1="{y:.1f}" x2="{W - 4}" y2="{y:.1f}" stroke="#c00" '
                     f'stroke-dasharray="4 3"/><text x="{W - 6}" y="{y - 3:.1f}" font-size="10" '
                     f'text-anchor="end" fill="#c00">{escape(f"{threshold:g}{unit}")}</text>')
    for k, (name, vs) in enumerate(series.items()):
        colour = colours[k % len(colours)]
        points = [(_x(i, len(vs)), _y(v, top)) for i, v in enumerate(vs) if v is not None]
        if points:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in points]
        parts.append(f'<text x="{PAD + 60 + 90 * k}" y="12" font-size="11" fill="{colour}">{escape(name)}</text>')
    for i, label in enumerate(labels):
        parts.append(f'<text x="{_x(i, len(labels)):.1f}" y="{H - PAD + 13}" font-size="10" '
                     f'text-anchor="middle">{escape(label)}</text>')
    return _frame("".join(parts), title)
