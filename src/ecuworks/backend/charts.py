"""Bar charts as inline SVG, drawn on the server: the report pages need no script.

Only presentation attributes (``fill``, ``font-size``), no ``style``: the pages' content
security policy allows no inline styles beyond the page's one hashed block.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

from markupsafe import Markup

__all__ = ["bar_chart"]

_WIDTH: Final = 640
_LABEL_W: Final = 200
_VALUE_W: Final = 90
_ROW_H: Final = 22
_BAR_H: Final = 14


def bar_chart(
    title: str, rows: Sequence[tuple[str, float]], *, unit: str, scale: float | None = None
) -> Markup:
    """A horizontal bar chart, one bar per (label, value).

    Args:
        title: what the chart shows (its accessible name).
        rows: the bars, top to bottom.
        unit: appended to each value (``"s"``, ``"%"``).
        scale: the value of a full-width bar; the largest value when None.

    Returns:
        The ``<svg>`` element, safe to insert into a page as it is.
    """
    if not rows:
        return Markup(f'<p class="empty">{escape(title)}: nothing in this period.</p>')  # noqa: S704 -- escaped
    full = scale or max(value for _, value in rows) or 1.0
    span = _WIDTH - _LABEL_W - _VALUE_W
    height = _ROW_H * len(rows) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{_WIDTH}" '
        f'height="{height}" viewBox="0 0 {_WIDTH} {height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(rows):
        y = 4 + i * _ROW_H
        width = max(1.0, span * min(value, full) / full)
        shown = f"{value:,.1f} {unit}".strip()
        parts.append(
            f'<text x="{_LABEL_W - 6}" y="{y + 12}" text-anchor="end" font-size="12" '
            f'fill="#222">{escape(label)}</text>'
            f'<rect x="{_LABEL_W}" y="{y}" width="{width:.1f}" height="{_BAR_H}" '
            f'fill="#2b6cb0"><title>{escape(label)}: {escape(shown)}</title></rect>'
            f'<text x="{_LABEL_W + width + 6:.1f}" y="{y + 12}" font-size="12" '
            f'fill="#222">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 -- every text in it is escaped
