"""Tables a notebook shows: JSON instead of a long ``json.dumps(..., indent=2)``, and a Cooking Agent's plan.

    rows = json_rows(plan.model_dump(mode="json")["steps"])   # one dict per row, every cell a string
    display(HTML(json_table(plan.model_dump(mode="json")["steps"])))
    display(HTML(plan_table(plan, recipe)))   # the plan, checked against hand-written metadata

A list of objects becomes one row per object and one column per key; an object becomes
``key | value`` rows; nested lists and objects stay in their cell as one line of compact JSON.
``plan_table`` shows a ``cooklab.agent.RecipePlan`` one step a row. Pure Python: nothing here
needs matplotlib or ipywidgets.
"""

from __future__ import annotations

import html
import json
import textwrap

__all__ = ["json_rows", "json_table", "plan_table"]


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
    """``json_rows(data)`` as an HTML table (for ``IPython.display.HTML``).

    Cells longer than ``max_chars`` end in '…'.
    """
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


def _container(step) -> str:
    """A plan step's container with its look: ``pot [blue, enamel]``, or '—'."""
    if step.container is None:
        return "—"
    look = ", ".join(step.container_attributes)
    return f"{step.container} [{look}]" if look else step.container


def _ingredients(step) -> str:
    """A plan step's ingredients with their state: ``oats (dry), milk``, or '—'."""
    return ", ".join(f"{i.name} ({i.state})" if i.state else i.name for i in step.ingredients) or "—"


def _reference(value) -> str:
    """A reference step number, or '—' for none."""
    return "—" if value is None else str(value)


def plan_table(plan, recipe=None, format: str = "html", wrap: int = 70) -> str:
    """A ``RecipePlan`` as a table: step, container and its look, reference step, ingredients with state, prompt.

    recipe: a ``Recipe`` with hand-written metadata to compare with; where the plan's container
    (case-insensitive) or reference step differs, the hand-written value is shown beside it
    (marked ≠). format: ``"html"`` (for ``IPython.display.HTML``) or ``"text"`` (for print;
    long prompts wrapped at ``wrap`` characters).
    """
    if format not in ("html", "text"):
        raise ValueError(f"format={format!r}: use 'html' or 'text'")
    if recipe is not None:
        plan.check(recipe)
    hand = list(recipe.steps) if recipe is not None else [None] * len(plan.steps)

    rows = []
    for step, written in zip(plan.steps, hand):
        container, reference = _container(step), _reference(step.reference_step)
        container_differs = reference_differs = False
        if written is not None:
            container_differs = (step.container or "").strip().lower() != (written.container or "").strip().lower()
            reference_differs = step.reference_step != written.reference_step
        rows.append(
            dict(
                step=step.step,
                container=container,
                reference=reference,
                ingredients=_ingredients(step),
                prompt=step.prompt,
                written_container=written.container if container_differs else None,
                written_reference=_reference(written.reference_step) if reference_differs else None,
                container_differs=container_differs,
                reference_differs=reference_differs,
            )
        )

    dish = f" · {plan.context.dish}" if plan.context.dish.strip().lower() != plan.title.strip().lower() else ""
    head = f"{plan.title}{dish} · planned by {plan.agent}"
    if format == "text":
        lines = [head, f"style: {plan.context.style}"]
        for r in rows:
            container = r["container"] + (
                f"   ≠ hand-written: {r['written_container'] or '—'}" if r["container_differs"] else ""
            )
            reference = r["reference"] + (
                f"   ≠ hand-written: {r['written_reference']}" if r["reference_differs"] else ""
            )
            lines += [
                f"step {r['step']}",
                f"  container:   {container}",
                f"  reference:   {reference}",
                f"  ingredients: {r['ingredients']}",
            ]
            lines += textwrap.wrap(r["prompt"], wrap, initial_indent="  prompt:      ", subsequent_indent=" " * 15)
        return "\n".join(lines)

    def cell(text, differs=False, written=None):
        body = html.escape(str(text))
        if differs:
            body += f"<br><span style='color:#b00'>≠ hand-written: {html.escape(str(written or '—'))}</span>"
        return f"<td style='text-align:left;vertical-align:top;padding:2px 8px'>{body}</td>"

    header = "".join(
        f"<th style='text-align:left;padding:2px 8px'>{name}</th>"
        for name in ("step", "container [look]", "reference step", "ingredients (state)", "prompt")
    )
    body = "".join(
        "<tr>"
        + cell(r["step"])
        + cell(r["container"], r["container_differs"], r["written_container"])
        + cell(r["reference"], r["reference_differs"], r["written_reference"])
        + cell(r["ingredients"])
        + "<td style='text-align:left;vertical-align:top;padding:2px 8px;font-size:90%'>"
        + f"{html.escape(r['prompt'])}</td></tr>"
        for r in rows
    )
    caption = (
        f"<caption style='caption-side:top;text-align:left'><b>{html.escape(head)}</b> · "
        f"style: {html.escape(plan.context.style)}</caption>"
    )
    return f"<table>{caption}<tr>{header}</tr>{body}</table>"
