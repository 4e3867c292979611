"""Scores with their 95% CIs as a chart: PNG through matplotlib, or a self-contained HTML
file with inline SVG (no scripts, no CDN). One panel per board (overall, then categories)."""

from __future__ import annotations

import html
import io
import math
from pathlib import Path

from arenajudge.core.errors import UserError
from arenajudge.present.report import BoardRow, board_numbers
from arenajudge.records.storage import replace_atomically

Panel = tuple[str, list[BoardRow]]


def write_plot(path: Path, panels: list[Panel], axis_label: str) -> Path:
    suffix = path.suffix.lower()
    if suffix == ".png":
        _write_png(path, panels, axis_label)
    elif suffix in (".html", ".htm"):
        replace_atomically(path, _html(panels, axis_label))
    else:
        raise UserError(f"--plot {path}: unknown format {path.suffix or '(none)'!r}, use a .png or .html file name")
    return path


def _write_png(path: Path, panels: list[Panel], axis_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    heights = [max(1.5, 0.32 * len(rows) + 0.9) for _, rows in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (title, rows) in zip(axes[:, 0], panels, strict=True):
        ordered = rows[::-1]  # best at the top
        y = list(range(len(ordered)))
        scores = [r.score for r in ordered]
        ax.errorbar(scores, y, xerr=[[r.score - r.lower for r in ordered], [r.upper - r.score for r in ordered]],
                    fmt="o", color="#1f5fa8", ecolor="#7aa6d6", capsize=3)
        ax.set_yticks(y, [r.model for r in ordered], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel(axis_label, fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    plt.close(fig)
    replace_atomically(path, png.getvalue())


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi], as matplotlib picks them."""
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    raw = (hi - lo) / max(target - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    count = math.ceil((hi - first) / step - 1e-9)
    return [round(first + k * step, 10) for k in range(count + 1)]


def ci_chart(rows: list[BoardRow], axis_label: str, title: str, reference: float | None, decimal: int = 1) -> str:
    """One row per model, best first: a point at the score, a bar over the interval, and the
    baseline's score as a dashed line; each point's tooltip gives the numbers as the board prints them."""
    label_w, plot_w, row_h, top, bottom = 280, 460, 24, 34, 40
    height = top + row_h * len(rows) + bottom
    values = [v for r in rows for v in (r.lower, r.upper, r.score)] + ([reference] if reference is not None else [])
    ticks = nice_ticks(min(values), max(values))
    lo, hi = ticks[0], ticks[-1]

    def x(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    width = label_w + plot_w + 30
    # the viewBox lets a narrow column shrink the chart rather than cut off its right edge
    parts = [f'<svg class="ci-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" style="max-width:100%;height:auto" font-family="sans-serif" '
             'font-size="12" role="img">',
             f'<text x="4" y="18" font-weight="bold">{html.escape(title)}</text>']
    axis_y = top + row_h * len(rows) + 4
    for v in ticks:
        parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top - 4}" y2="{axis_y}" stroke="#eee"/>')
        parts.append(f'<text x="{x(v):.1f}" y="{axis_y + 14}" text-anchor="middle" fill="#555">{v:g}</text>')
    if reference is not None:
        parts.append(f'<line class="reference" x1="{x(reference):.1f}" x2="{x(reference):.1f}" y1="{top - 8}" '
                     f'y2="{axis_y}" stroke="#c0392b" stroke-dasharray="4 3"/>')
    for i, r in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        score, offsets = board_numbers(r, decimal)
        tip = f"{r.model}: {score} {offsets}"
        parts += [f'<text x="{label_w - 8}" y="{cy + 4:.1f}" text-anchor="end">{html.escape(r.model)}</text>',
                  f'<line class="interval" x1="{x(r.lower):.1f}" x2="{x(r.upper):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" '
                  'stroke="#7aa6d6" stroke-width="3"/>',
                  f'<circle class="score" cx="{x(r.score):.1f}" cy="{cy:.1f}" r="4.5" fill="#1f5fa8" '
                  f'data-model="{html.escape(r.model)}"><title>{html.escape(tip)}</title></circle>']
    parts.append(f'<line x1="{label_w}" x2="{label_w + plot_w}" y1="{axis_y}" y2="{axis_y}" stroke="#999"/>')
    parts.append(f'<text x="{label_w + plot_w / 2}" y="{axis_y + 32}" text-anchor="middle" fill="#555">'
                 f'{html.escape(axis_label)}</text></svg>')
    return "\n".join(parts)


def _html(panels: list[Panel], axis_label: str) -> str:
    body = "\n".join(f"<div>{ci_chart(rows, axis_label, title, None)}</div>" for title, rows in panels if rows)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>arenajudge leaderboard</title></head>\n"
            f"<body>\n{body}\n</body></html>\n")
