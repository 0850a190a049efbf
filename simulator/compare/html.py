"""report.html: one self-contained page (inline CSS, plots as base64 PNG): it opens offline."""

from __future__ import annotations

import base64
import html
from typing import Any

from simulator.compare import markdown as md

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child, td.text { text-align: left; }
.pass { color: #16691d; } .fail { color: #b00020; }
figure { margin: 1em 0 2em; } figcaption { font-size: 0.85em; color: #555; max-width: 60em; }
img { max-width: 100%; }
code { font-size: 0.9em; }
"""


def render_html(data: dict[str, Any]) -> str:
    from simulator.compare.plots import PLOTS

    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             "<title>Tessera comparison</title>", f"<style>{STYLE}</style></head><body>",
             "<h1>Tessera comparison</h1>", f"<p>{_e(md.summary_line(data))}</p>"]
    if data.get("gate"):
        parts += _gate(data["gate"])
    parts += ["<h2>Decode, per run</h2>", _table(md.RUN_HEADER, [md.run_row(r) for r in data["runs"]])]
    parts += ["<h2>Targets</h2>", _table(md.TARGET_HEADER, md.target_rows(data))]
    for key, title, draw, caption in PLOTS:
        image = base64.b64encode(draw(data)).decode("ascii")
        parts += [f"<h2>{_e(title)}</h2>", f"<figure id=\"{key}\"><img alt=\"{_e(title)}\" "
                  f"src=\"data:image/png;base64,{image}\"><figcaption>{_e(caption)}</figcaption></figure>"]
    notes = md.run_notes(data)
    if notes:
        parts += ["<h2>Runs without figures</h2>", "<ul>"]
        parts += [f"<li><code>{_e(key)}</code>: {_e(why)}</li>" for key, why in notes]
        parts.append("</ul>")
    parts += ["<h2>Conventions</h2>", "<ul>"]
    parts += [f"<li><code>{_e(k)}</code>: {_e(str(v))}</li>" for k, v in data["conventions"].items()]
    parts += ["</ul>", "</body></html>"]
    return "\n".join(parts) + "\n"


def _gate(gate: dict[str, Any]) -> list[str]:
    verdict = "PASS" if gate["passed"] else "FAIL"
    rows = [md.finding_row(f) for f in gate["findings"] if f["verdict"] != "within"]
    where = f" against <code>{_e(gate['baseline'])}</code>" if gate.get("baseline") else ""
    parts = [f"<h2>Gate: <span class=\"{verdict.lower()}\">{verdict}</span></h2>",
             f"<p>{gate['figures_checked']} figures checked{where}, default tolerance "
             f"{100 * gate['tolerance']:.1f}%.</p>"]
    if rows:
        header = ("run", "figure", "baseline", "now", "change", "tolerance", "why")
        verdicts = [f["verdict"] for f in gate["findings"] if f["verdict"] != "within"]
        parts.append(_table(("verdict", *header), [[v, *row] for v, row in zip(verdicts, rows)]))
    return parts


def _table(header: tuple[str, ...], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(cell: str) -> str:
    text = str(cell).replace("**", "").replace("`", "")
    numeric = text[:1].isdigit() or text[:1] in "+-"
    return f"<td>{_e(text)}</td>" if numeric else f"<td class=\"text\">{_e(text)}</td>"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
