"""The OpenAPI document -> one self-contained HTML page (no scripts, no CDN: the server may be offline)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

_CODE = re.compile(r"`([^`]+)`")
STYLE = """body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px}h2{border-bottom:1px solid #ddd;margin-top:2em}
.op{margin:1.2em 0;padding:.6em 1em;border:1px solid #ddd;border-radius:6px}.m{font-weight:bold;
text-transform:uppercase;margin-right:.5em}table{border-collapse:collapse;width:100%;font-size:14px}
td,th{border-top:1px solid #eee;padding:.3em .4em;text-align:left;vertical-align:top}"""


def _text(value: str) -> str:
    """Escape, then show `x` as <code>x</code>."""
    return _CODE.sub(r"<code>\1</code>", html.escape(value))


def _type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        values = schema["enum"]
        shown = ", ".join(str(v) for v in values[:8]) + (f", ... ({len(values)})" if len(values) > 8 else "")
        return f"{schema.get('type', '')}: {shown}"
    if schema.get("type") == "array":
        return f"array of {_type(schema['items'])}"
    limits = [f"{k} {schema[k]:g}" for k in ("minimum", "maximum") if k in schema]
    return ", ".join([str(schema.get("type", "")), *limits])


def _row(name: str, where: str, schema: dict[str, Any], required: bool, description: str) -> str:
    default = json.dumps(schema["default"]) if "default" in schema else ""
    return (f"<tr><td><code>{html.escape(name)}</code>{' *' if required else ''}</td><td>{where}</td>"
            f"<td>{html.escape(_type(schema))}</td><td>{html.escape(default)}</td><td>{_text(description)}</td></tr>")


def _params(op: dict[str, Any]) -> list[str]:
    form = op.get("requestBody", {}).get("content", {}).get("multipart/form-data")
    fields = form["schema"]["properties"] if form else {}
    # An option accepted both ways is listed once, as "query, form".
    rows = [_row(p["name"], "query, form" if p["name"] in fields else p["in"], p["schema"], p.get("required", False),
                 p.get("description", "")) for p in op.get("parameters", [])]
    listed = {p["name"] for p in op.get("parameters", [])}
    required = set(form["schema"].get("required", [])) if form else set()
    for name, schema in fields.items():
        if name not in listed:
            rows.append(_row(name, "form", schema, name in required, schema.get("description", "")))
    if not rows:
        return []
    return ["<table><tr><th>name</th><th>in</th><th>type</th><th>default</th><th>description</th></tr>",
            *rows, "</table>"]


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    body = op.get("requestBody", {}).get("content", {})
    responses = ", ".join(f"<code>{s}</code>" for s in op["responses"])
    auth = "no token" if op.get("security") == [] else "token"
    parts = [f'<div class="op" id="{html.escape(op["operationId"])}"><p><span class="m">{method}</span>'
             f"<code>{html.escape(path)}</code> — {_text(op['summary'])} ({auth})</p>",
             f"<p>{_text(op.get('description', ''))}</p>"]
    if body:
        parts.append("<p>Body: " + ", ".join(f"<code>{html.escape(t)}</code>" for t in body) + "</p>")
    parts += _params(op)
    produced = sorted({t for r in op["responses"].values() for t in r.get("content", {})})
    parts.append(f"<p>Responses: {responses}; " + ", ".join(f"<code>{t}</code>" for t in produced) + "</p></div>")
    return "\n".join(parts)


def render_docs(spec: dict[str, Any]) -> str:
    info = spec["info"]
    sections: dict[str, list[str]] = {t["name"]: [] for t in spec.get("tags", [])}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            sections.setdefault(op["tags"][0], []).append(_operation(path, method, op))
    out = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(info['title'])}"
           f"</title><style>{STYLE}</style></head><body>",
           f"<h1>{html.escape(info['title'])} <small>{html.escape(info['version'])}</small></h1>",
           f"<p>{_text(info['description'])}</p><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a></p>"]
    for tag, ops in sections.items():
        if ops:
            out.append(f"<h2>{html.escape(tag)}</h2>")
            out += ops
    out.append("</body></html>")
    return "\n".join(out)
