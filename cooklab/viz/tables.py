"""JSON as a table: what a notebook shows instead of a long ``json.dumps(..., indent=2)``.

    rows = json_rows(plan.model_dump(mode="json")["steps"])   # one dict per row, every cell a string
    display(HTML(json_table(plan.model_dump(mode="json")["steps"])))

A list of objects becomes one row per object and one column per key; an object becomes
``key | value`` rows; nested lists and objects stay in their cell as one line of compact JSON.
Pure Python: nothing here needs matplotlib or ipywidgets.
"""

from __future__ import annotations

import html
import json

__all__ = ["json_rows", "json_table"]


def _cell(value) -> str:
    """A JSON value as the text of one cell: strings as they are, None as '—', lists/objects as compact JSON."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return json.dumps(value)  # numbers and booleans as JSON writes them (true, not True)


def json_rows(data) -> list[dict[str, str]]:
    """JSON-like data (what ``json.loads`` returns) as table rows: a list of ``{column: cell text}``.

    * a list of objects: one row per object; the columns are the keys in the order first seen
      (a key an object lacks gives '—');
    * an object: one row per key, columns ``key`` and ``value``;
    * a scalar, or a list with a scalar in it: one row per item, column ``value``.
    """
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        columns = list(dict.fromkeys(key for item in data for key in item))
        return [{key: _cell(item.get(key)) for key in columns} for item in data]
    if isinstance(data, dict):
        return [{"key": str(key), "value": _cell(value)} for key, value in data.items()]
    return [{"value": _cell(item)} for item in (data if isinstance(data, list) else [data])]


def json_table(data, max_chars: int = 160) -> str:
    """``json_rows(data)`` as an HTML table (for ``IPython.display.HTML``); cells longer than ``max_chars`` end in '…'."""
    rows = json_rows(data)
    if not rows:
        return "<table><tr><td><i>empty</i></td></tr></table>"

    def cell(text: str, tag: str = "td") -> str:
        short = text if len(text) <= max_chars else text[: max_chars - 1] + "…"
        return f"<{tag} style='text-align:left;vertical-align:top;padding:2px 8px'>{html.escape(short)}</{tag}>"

    columns = list(rows[0])
    header = "<tr>" + "".join(cell(c, "th") for c in columns) + "</tr>"
    body = "".join("<tr>" + "".join(cell(r[c]) for c in columns) + "</tr>" for r in rows)
    return f"<table>{header}{body}</table>"
