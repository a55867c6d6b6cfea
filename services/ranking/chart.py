"""Points by dimension as a server-drawn SVG bar chart (no chart library, no CDN). Pure."""

from __future__ import annotations

from html import escape

from shared.vocabulary import DIMENSIONS


def bars(points: list[tuple[str, int]], width: int = 760, row: int = 44) -> str:
    """Horizontal bars, one per dimension, labelled in zh-CN; negative totals drawn leftwards in red."""
    if not points:
        return '<p class="empty">暂无已认定的积分</p>'
    label_w, value_w = 220, 80
    span = max(abs(p) for _, p in points) or 1
    plot = width - label_w - value_w
    zero = label_w + (plot * 0.2 if any(p < 0 for _, p in points) else 0)
    scale = (label_w + plot - zero) / span
    height = row * len(points) + 8
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="各维度积分">']
    for i, (dim, p) in enumerate(points):
        y = 4 + i * row
        w = abs(p) * scale
        x = zero if p >= 0 else zero - w
        name = escape(DIMENSIONS.get(dim, dim))
        ty = f"{y + row * 0.62:.1f}"
        parts.append(f'<text x="{label_w - 12}" y="{ty}" text-anchor="end" class="label">{name}</text>'
                     f'<rect x="{x:.1f}" y="{y + 6}" width="{max(w, 2):.1f}" height="{row - 14}" rx="4" '
                     f'class="{"bar" if p >= 0 else "bar neg"}"/>'
                     f'<text x="{zero + (w if p >= 0 else 0) + 10:.1f}" y="{ty}" class="value">{p}</text>')
    parts.append("</svg>")
    return "".join(parts)
