"""A self-contained HTML report (images embedded), readable offline."""

from __future__ import annotations

import base64
import html
from pathlib import Path


def img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table(header: list[str], rows: list[list], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"num" if i >= numeric_from else ""}">{html.escape(str(c))}</td>' for i, c in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;
     padding:0 16px;color:#1d2430;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #dde3ea;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}
th,td{border:1px solid #dde3ea;padding:4px 10px;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f3f6f9} img{max-width:100%;height:auto;border:1px solid #eef1f4;margin:.4em 0}
.note{background:#fff7e0;border-left:4px solid #f0b429;padding:8px 12px;margin:.8em 0}
.good{background:#e9f7ef;border-left:4px solid #2f9e62;padding:8px 12px;margin:.8em 0}
.muted{color:#5b6675;font-size:.9em} .scroll{overflow-x:auto;max-width:100%}
"""


def render(title: str, sections: list[str]) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>")


def section(heading: str, *parts: str) -> str:
    return f"<h2>{html.escape(heading)}</h2>" + "".join(parts)


def paragraph(text: str, kind: str = "") -> str:
    css = f' class="{kind}"' if kind else ""
    return f"<p{css}>{html.escape(text)}</p>"


