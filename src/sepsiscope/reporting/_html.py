"""HTML building blocks of the report: escaping, embedded images, tables, the page template.

Everything here returns HTML text. Strings that come from data (patient ids, paths, labels, column
names) pass through :func:`esc`; images become ``data:image/png;base64`` URIs, so the page makes no
network request and holds no script.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd

MAX_IMAGE_SIDE_PX = 1600  # larger PNGs are scaled down so the report stays a few MB


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes."""
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 3) -> str:
    """A number or text for a table cell (escaped); missing values as an en dash."""
    if value is None:
        return "&ndash;"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        if not math.isfinite(float(value)):
            return "&ndash;"
        if float(value).is_integer() and abs(float(value)) < 1e9:
            return f"{int(value):,}"
        return f"{float(value):.{digits}g}" if abs(float(value)) >= 1e4 else f"{value:.{digits}f}"
    return esc(value)


def png_uri(data: bytes) -> str:
    """A data URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_png(fig: Any, *, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def png_file_bytes(path: Path) -> bytes:
    """A PNG file's bytes, scaled down when a side exceeds :data:`MAX_IMAGE_SIDE_PX`."""
    data = path.read_bytes()
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        if max(image.size) <= MAX_IMAGE_SIDE_PX:
            return data
        image.thumbnail((MAX_IMAGE_SIDE_PX, MAX_IMAGE_SIDE_PX))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()


def image(data: bytes, caption: str = "", *, wide: bool = False) -> str:
    """A figure with an embedded PNG and an escaped caption."""
    cls = "fig wide" if wide else "fig"
    alt = esc(caption or "figure")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure class="{cls}"><img alt="{alt}" src="{png_uri(data)}">{cap}</figure>'


def gallery(items: Iterable[str]) -> str:
    """Figures side by side, wrapping."""
    body = "".join(items)
    return f'<div class="gallery">{body}</div>' if body else ""


def table(frame: pd.DataFrame, *, digits: int = 3, index: bool = False, cls: str = "") -> str:
    """An HTML table of ``frame``; every header and cell escaped."""
    if index:
        frame = frame.reset_index()
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = "".join(_td(_cell(v, digits)) for v in record)
        rows.append(f"<tr>{cells}</tr>")
    attr = f' class="{esc(cls)}"' if cls else ""
    return (
        f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _td(text: str) -> str:
    # short cells stay on one line ("non-septic"); long text (messages, paths) wraps
    return f'<td class="long">{text}</td>' if len(text) > 48 else f"<td>{text}</td>"


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, Raw):
        return value.html
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&ndash;"
    return fmt(value, digits)


class Raw:
    """A table cell that is already HTML (built from escaped parts); not a str, so pandas
    keeps it as it is."""

    __slots__ = ("html",)

    def __init__(self, html_text: str) -> None:
        self.html = html_text

    def __str__(self) -> str:
        return self.html


def key_values(items: Mapping[str, Any], *, digits: int = 3, rows_per_column: int = 10) -> str:
    """Name/value tables (nested mappings flattened with dots), side by side when long."""
    flat = dict(_flatten(items))
    if not flat:
        return ""
    names = list(flat)
    n_columns = max(1, -(-len(names) // rows_per_column))
    per_column = -(-len(names) // n_columns)
    tables = []
    for start in range(0, len(names), per_column):
        chunk = names[start : start + per_column]
        frame = pd.DataFrame({"name": chunk, "value": [_short(flat[k]) for k in chunk]})
        tables.append(table(frame, digits=digits, cls="kv"))
    return f'<div class="kvs">{"".join(tables)}</div>'


def _flatten(items: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in items.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _short(value: Any) -> Any:
    if isinstance(value, list | tuple):
        text = ", ".join(str(v) for v in value[:8])
        return f"[{text}{', ...' if len(value) > 8 else ''}] ({len(value)})"
    return value


def not_run(what: str, command: str) -> str:
    """The note of a section whose artifacts do not exist yet."""
    return (
        f'<p class="notrun"><strong>Not run.</strong> No {esc(what)} in this run. '
        f"Make it with <code>{esc(command)}</code>.</p>"
    )


def warning(text: str) -> str:
    """A prominent escaped warning (e.g. a leaky split)."""
    return f'<p class="warning">{esc(text)}</p>'


def note(text: str) -> str:
    """A small escaped paragraph."""
    return f'<p class="note">{esc(text)}</p>'


def section(anchor: str, title: str, body: str) -> str:
    """A numbered section of the page."""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;
background:#f4f6f8;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:0 24px 48px}
header{background:#1f3a5f;color:#fff;padding:22px 24px}
header h1{margin:0 auto;max-width:1180px;font-size:1.7em}
header p{margin:6px auto 0;max-width:1180px;opacity:.85;font-size:.92em}
.research{border:2px solid #b3261e;background:#fdecea;color:#5f1410;padding:12px 16px;
margin:20px 0;border-radius:6px;font-size:1.02em}
nav{margin:12px 0 4px;font-size:.9em}
nav a{margin-right:14px;color:#1f3a5f}
section{background:#fff;border-radius:8px;padding:6px 22px 18px;margin:18px 0;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{border-bottom:1px solid #dde3ea;padding-bottom:6px;color:#1f3a5f}
h3{margin-bottom:6px;color:#2d4a70}
table{border-collapse:collapse;font-size:.86em;margin:8px 0}
th,td{border:1px solid #d5dbe3;padding:4px 8px;text-align:left;vertical-align:top}
td{white-space:nowrap}
td.long{white-space:normal;min-width:16em}
td small{color:#6b7685;white-space:nowrap}
th{background:#eef2f6}
tbody tr:nth-child(even){background:#fafbfc}
.kv td:first-child{font-family:ui-monospace,monospace;color:#44546a}
.scroll{overflow-x:auto;max-height:620px;overflow-y:auto}
.gallery{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.kvs{display:flex;flex-wrap:wrap;gap:0 18px;align-items:flex-start}
.kvs .scroll{max-height:none}
figure{margin:8px 0;max-width:560px}
.gallery img{max-height:440px;width:auto}
.gallery figure.wide img{max-height:none}
figure.wide{max-width:100%}
figure img{max-width:100%;border:1px solid #e1e5ea;border-radius:4px;background:#fff}
figcaption{font-size:.82em;color:#55606e;word-break:break-all}
.notrun{background:#fff8e1;border-left:4px solid #e0a800;padding:8px 12px}
.note{color:#55606e;font-size:.9em}
.warning{background:#fdecea;border-left:4px solid #b3261e;padding:8px 12px;font-weight:600}
.septic{color:#b3261e;font-weight:600}.non-septic{color:#1b6e3a;font-weight:600}
code{background:#eef2f6;padding:1px 4px;border-radius:3px}
footer{max-width:1180px;margin:0 auto;padding:0 24px 30px;color:#77818f;font-size:.82em}
"""

_PAGE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$css</style>
</head>
<body>
<header><h1>$title</h1><p>$subtitle</p></header>
<main>
<div class="research" role="note">$statement</div>
<nav>$nav</nav>
$sections
</main>
<footer>$footer</footer>
</body>
</html>
"""
)


def page(
    *,
    title: str,
    subtitle: str,
    statement: str,
    sections: list[tuple[str, str, str]],
    footer: str,
) -> str:
    """The whole document; ``sections`` are (anchor, title, body HTML)."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    return _PAGE.substitute(
        title=esc(title),
        subtitle=esc(subtitle),
        statement=statement,
        nav=nav,
        sections="\n".join(section(a, t, b) for a, t, b in sections),
        footer=esc(footer),
        css=_CSS,
    )
