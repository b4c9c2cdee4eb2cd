"""A loss curve as a standalone SVG: no plotting library to install, opens in any browser."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

_W, _H, _PAD = 640, 360, 56


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def loss_svg(steps: Sequence[int], losses: Sequence[float], *, title: str = "training loss") -> str:
    """SVG text of loss against step; a log-scale y axis when the loss spans > 1 decade."""
    points = [(s, v) for s, v in zip(steps, losses, strict=True) if math.isfinite(v)]
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'font-family="sans-serif" font-size="12">\n'
        f'<rect width="{_W}" height="{_H}" fill="white"/>\n'
        f'<text x="{_W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>\n'
    )
    if not points:
        return (
            head + f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no data</text>\n</svg>\n'
        )
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    log = min(ys) > 0 and max(ys) / min(ys) > 10
    fy = (lambda v: math.log10(v)) if log else (lambda v: v)
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = fy(min(ys)), fy(max(ys))
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def px(x: float) -> float:
        return _PAD + (x - x0) / (x1 - x0) * (_W - 2 * _PAD)

    def py(y: float) -> float:
        return _H - _PAD - (fy(y) - y0) / (y1 - y0) * (_H - 2 * _PAD)

    parts = [head]
    parts.append(
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="black"/>\n'
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="black"/>\n'
    )
    for t in _ticks(x0, x1):
        parts.append(
            f'<text x="{px(t):.1f}" y="{_H - _PAD + 16}" text-anchor="middle">{t:.0f}</text>\n'
        )
    for t in _ticks(y0, y1):
        value = 10**t if log else t
        y = _H - _PAD - (t - y0) / (y1 - y0) * (_H - 2 * _PAD) + 4
        parts.append(f'<text x="{_PAD - 6}" y="{y:.1f}" text-anchor="end">{value:.3g}</text>\n')
    parts.append(f'<text x="{_W / 2}" y="{_H - 12}" text-anchor="middle">step</text>\n')
    scale = "loss (log scale)" if log else "loss"
    parts.append(
        f'<text x="14" y="{_H / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_H / 2})">{scale}</text>\n'
    )
    path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
    parts.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{path}"/>\n')
    parts.append("</svg>\n")
    return "".join(parts)


def write_loss_svg(path: Path, steps: Sequence[int], losses: Sequence[float]) -> None:
    tmp = path.with_suffix(".svg.tmp")
    tmp.write_text(loss_svg(steps, losses))
    tmp.replace(path)


def outcomes_svg(lengths: Sequence[int], success: Sequence[bool], *, title: str) -> str:
    """One bar per rollout, its height the episode length, green = success, red = failure."""
    n = len(lengths)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'font-family="sans-serif" font-size="12">\n'
        f'<rect width="{_W}" height="{_H}" fill="white"/>\n'
        f'<text x="{_W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>\n'
    )
    if n == 0:
        return head + "</svg>\n"
    top = max(max(lengths), 1)
    width = (_W - 2 * _PAD) / n
    parts = [head]
    for i, (length, ok) in enumerate(zip(lengths, success, strict=True)):
        h = length / top * (_H - 2 * _PAD)
        color = "#2ca02c" if ok else "#d62728"
        parts.append(
            f'<rect x="{_PAD + i * width + 0.5:.1f}" y="{_H - _PAD - h:.1f}" '
            f'width="{max(width - 1, 0.5):.1f}" height="{h:.1f}" fill="{color}"/>\n'
        )
    parts.append(
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="black"/>\n'
        f'<text x="{_W / 2}" y="{_H - 12}" text-anchor="middle">rollout (green: success)</text>\n'
        f'<text x="{_PAD - 6}" y="{_PAD + 4}" text-anchor="end">{top}</text>\n'
        f'<text x="14" y="{_H / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_H / 2})">steps</text>\n</svg>\n'
    )
    return "".join(parts)
