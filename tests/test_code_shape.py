"""The shape of cooklab's code (docs/architecture.md, "Code shape"): files and functions a reader can hold in mind.

* no module in ``cooklab/`` over ``MAX_FILE_LINES`` lines, unless it is one idea named in ``ONE_IDEA`` with the
  reason it stays whole;
* no function whose body (its docstring not counted) is over ``MAX_FUNCTION_LINES`` lines, except argument
  parsers (a long list of ``add_argument`` calls reads best in one place).
"""

import ast
from pathlib import Path

import cooklab

ROOT = Path(cooklab.__file__).parent
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80

#: modules allowed over MAX_FILE_LINES, each one idea a reader wants in one file
ONE_IDEA = {
    "recipe.py": "the recipe data model and its loaders: one schema, read from YAML, JSON or numbered text",
}


def _is_argument_parser(node: ast.FunctionDef) -> bool:
    """A function that builds an ``argparse`` parser: its name ends in ``parser`` or it only adds arguments."""
    return node.name.endswith("parser") or node.name.endswith("_options") or node.name.endswith("_arguments")


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


def test_no_module_over_the_file_limit_unless_one_idea():
    long = {
        str(path.relative_to(ROOT)): n
        for path in ROOT.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert {name: n for name, n in long.items() if name not in ONE_IDEA} == {}


def test_no_function_body_over_the_limit():
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_argument_parser(node):
                if (n := _body_lines(node)) > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


def test_the_limits_see_what_they_measure():
    """The body count skips the docstring and counts to the last line of the last statement."""
    source = 'def f(a,\n      b):\n    """Doc.\n\n    More."""\n    x = 1\n    return (x,\n            a)\n'
    node = ast.parse(source).body[0]
    assert _body_lines(node) == 3
    assert not _is_argument_parser(node)
