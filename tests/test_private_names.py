"""No cooklab module uses another module's private names, nor another object's private attributes.

Read from the source with ``ast``: ``from x import _name`` and ``obj._name`` where ``obj`` is not
``self``, ``cls`` or ``super()`` are uses of someone else's private name. Dunder names
(``__file__``, ``__name__`` ...) are public by convention. Third-party private APIs that cooklab
needs are allowed only through ``ALLOWED`` below, each with the reason it is needed.
"""

import ast
from pathlib import Path

import cooklab

ROOT = Path(cooklab.__file__).parent

# Third-party private names cooklab relies on, and why (keep this list short).
ALLOWED = {
    # diffusers: the device a pipeline runs its models on (accounts for CPU offload hooks); FluxPipeline has
    # no public equivalent.
    "_execution_device",
    # diffusers: Flux attention's Q/K/V projections (fused or not), which the regional processor copies from
    # FluxAttnProcessor (cooklab/cookanything/regional.py, "Copied from").
    "_get_qkv_projections",
    # Python: argparse's type of ``add_subparsers()``'s result, used in annotations (cooklab/cli/options.py).
    "_SubParsersAction",
    # Python: the caller's frame, to warn at the user's line (cooklab/errors.py, warn_caller).
    "_getframe",
}


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not _is_dunder(name)


def _is_own(node: ast.expr) -> bool:
    """``self``, ``cls`` or ``super()``: the object whose private names a method may use."""
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def private_uses(path: Path) -> list[str]:
    """Every use of another module's or object's private name in the module at ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found += [
                f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import {alias.name}"
                for alias in node.names
                if _is_private(alias.name) and alias.name not in ALLOWED
            ]
        elif isinstance(node, ast.Attribute) and _is_private(node.attr) and not _is_own(node.value):
            if node.attr not in ALLOWED:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_uses_private_names_of_another():
    violations = {
        str(path.relative_to(ROOT.parent)): uses for path in sorted(ROOT.rglob("*.py")) if (uses := private_uses(path))
    }
    assert not violations, "private names used from outside their module or object:\n" + "\n".join(
        f"{module}: {use}" for module, uses in violations.items() for use in uses
    )


def test_the_check_sees_a_reach_in(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "from x import _hidden, public\n"
        "class A:\n"
        "    def f(self, other):\n"
        "        self._mine, other._theirs, super()._parent(), other.__class__\n"
    )
    assert private_uses(module) == ["line 1: from x import _hidden", "line 4: other._theirs"]
