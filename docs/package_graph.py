"""The package graph of cooklab, read from the code: the picture and the layer table of ``docs/architecture.md``.

Every ``import`` of a cooklab module, at the top of the module or inside a function, counts (a
lazy import is still a dependency); imports under ``if TYPE_CHECKING:`` do not (annotations only,
never run). A *package* is a folder of ``cooklab/`` (``cooklab.metrics``) or a top-level module
(``cooklab.errors``); the root facade ``cooklab/__init__.py`` re-exports the public API and is left out.

``PACKAGE_LAYERS`` lists the packages from the bottom up. A package imports packages of its own
layer and of the layers below, never above, and no two packages import each other in a circle;
``tests/test_architecture.py`` checks both with ``cooklab_imports`` and ``package_imports`` from here.

    python docs/package_graph.py           # write docs/img/package_graph.svg and the table in docs/architecture.md
    python docs/package_graph.py --check   # exit 1 when either is out of date
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "cooklab"
PICTURE = REPO / "docs" / "img" / "package_graph.svg"
ARCHITECTURE = REPO / "docs" / "architecture.md"
TABLE_START = "<!-- package layers: written by docs/package_graph.py -->"
TABLE_END = "<!-- end of package layers -->"

#: cooklab's packages, lowest layer first: (layer, packages)
PACKAGE_LAYERS = [
    (
        "foundation",
        [
            "errors",
            "checks",
            "fileio",
            "versions",
            "hub",
            "recipe",
            "word_tokenizers",
            "images",
            "resources",
            "console",
        ],
    ),
    ("models, backbones, planners", ["backbones", "models", "agent"]),
    ("mask providers", ["grounding"]),
    ("instrument", ["instrument"]),
    ("pipelines", ["size_guard", "pipeline_base", "recipe_diffusion", "cookanything"]),
    ("toy world", ["toykitchen"]),
    ("metrics", ["metrics"]),
    ("baselines", ["baselines"]),
    ("figures and pages", ["viz", "report"]),
    ("applications", ["named_runs", "runs", "evaluation", "training", "gallery", "scoring", "demo", "course"]),
    ("command line", ["cli", "__main__"]),
]


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def module_paths(root: Path = ROOT) -> dict[str, Path]:
    """Every cooklab module's dotted name -> its file (a package's name -> its ``__init__.py``)."""
    return {
        ".".join(("cooklab", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): p
        for p in sorted(root.rglob("*.py"))
    }


def _imported_names(path: Path, package: list[str]) -> set[str]:
    """Every dotted name an ``import`` in ``path`` names (outside ``if TYPE_CHECKING:``), relative ones resolved."""
    imported = set()
    nodes = [ast.parse(path.read_text())]
    while nodes:
        node = nodes.pop()
        if _type_checking_only(node):
            nodes.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) + 1 - node.level] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            imported.update([module, *(f"{module}.{alias.name}" for alias in node.names)])
        nodes.extend(ast.iter_child_nodes(node))
    return imported


def cooklab_imports(root: Path = ROOT) -> dict[str, set[str]]:
    """Every cooklab module -> the cooklab modules it imports (at the top or inside functions)."""
    paths = module_paths(root)
    graph = {}
    for name, path in paths.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        imported = _imported_names(path, package)
        # importing a.b.c also runs a.b's __init__ (not counting the packages this module sits in)
        imported |= {target.rsplit(".", n)[0] for target in set(imported) for n in range(1, target.count(".") + 1)}
        graph[name] = {target for target in imported if target in paths and not f"{name}.".startswith(f"{target}.")}
    return graph


def package_of(module: str) -> str | None:
    """``cooklab.metrics.dino_distance`` -> ``metrics``, ``cooklab.errors`` -> ``errors``; the root facade -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def package_imports(graph: dict[str, set[str]]) -> dict[str, dict[str, list[str]]]:
    """Every package -> {package it imports: the module imports that make the edge, ``"a -> b"``}."""
    packages: dict[str, dict[str, list[str]]] = {}
    for module, targets in sorted(graph.items()):
        source = package_of(module)
        if source is None:
            continue
        edges = packages.setdefault(source, {})
        for target in sorted(targets):
            imported = package_of(target)
            if imported is not None and imported != source:
                edges.setdefault(imported, []).append(f"{module} -> {target}")
    return packages


def layer_of(package: str) -> int | None:
    """Index in ``PACKAGE_LAYERS`` of the layer that lists ``package`` (None: unlisted)."""
    return next((i for i, (_, names) in enumerate(PACKAGE_LAYERS) if package in names), None)


def _label(package: str) -> str:
    return package if (ROOT / package).is_dir() else f"{package}.py"


def layer_table(packages: dict[str, dict[str, list[str]]]) -> str:
    """The Markdown table of the layers, top layer first: each package and the lower packages it imports."""
    rows = ["| layer | package | imports |", "|---|---|---|"]
    for index in reversed(range(len(PACKAGE_LAYERS))):
        name, members = PACKAGE_LAYERS[index]
        for k, package in enumerate(members):
            imported = ", ".join(f"`{p}`" for p in sorted(packages.get(package, {}), key=lambda p: (layer_of(p), p)))
            layer = f"{index} {name}" if k == 0 else ""
            rows.append(f"| {layer} | `{_label(package)}` | {imported or '—'} |")
    return "\n".join(rows) + "\n"


def _direct_edges(packages: dict[str, dict[str, list[str]]]) -> list[tuple[str, str]]:
    """The edges not implied by a longer path (the transitive reduction): what the picture draws."""
    reach: dict[str, set[str]] = {}

    def reachable(package: str) -> set[str]:
        if package not in reach:
            reach[package] = set()
            for target in packages.get(package, {}):
                reach[package] |= {target, *reachable(target)}
        return reach[package]

    edges = []
    for source, targets in sorted(packages.items()):
        for target in sorted(targets):
            if not any(target in reachable(other) for other in targets if other != target):
                edges.append((source, target))
    return edges


def picture(packages: dict[str, dict[str, list[str]]]) -> bytes:
    """The SVG of the package graph: one row per layer (the lowest at the bottom), an arrow per direct import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "cooklab"
    plt.rcParams["svg.fonttype"] = "none"
    width = max(len(members) for _, members in PACKAGE_LAYERS)
    position = {}
    for row, (_, members) in enumerate(PACKAGE_LAYERS):
        for k, package in enumerate(members):
            position[package] = ((k + 0.5) * width / len(members), row)
    fig, ax = plt.subplots(figsize=(2.0 * width + 2.5, 0.75 * len(PACKAGE_LAYERS) + 0.5))
    for source, target in _direct_edges(packages):
        ax.annotate(
            "",
            xy=position[target],
            xytext=position[source],
            arrowprops=dict(
                arrowstyle="-|>", color="0.55", lw=0.8, shrinkA=11, shrinkB=11, connectionstyle="arc3,rad=0.15"
            ),
        )
    for package, (x, y) in position.items():
        ax.text(x, y, _label(package), ha="center", va="center", fontsize=9, bbox=dict(boxstyle="round", fc="#eef3fb"))
    for row, (name, _) in enumerate(PACKAGE_LAYERS):
        ax.text(-0.3, row, f"{row}  {name}", ha="right", va="center", fontsize=9, color="0.3")
    ax.set_xlim(-2.0, width)
    ax.set_ylim(-0.6, len(PACKAGE_LAYERS) - 0.4)
    ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return buffer.getvalue()


def with_table(text: str, table: str) -> str:
    """``docs/architecture.md``'s text with the table between its markers replaced by ``table``."""
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    return f"{text[:start]}\n\n{table}\n{text[end:]}"


def main(argv=None) -> int:
    """Write the picture and the table (``--check``: only say whether they are up to date)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the picture or the table is out of date")
    args = parser.parse_args(argv)
    packages = package_imports(cooklab_imports())
    svg, doc = picture(packages), with_table(ARCHITECTURE.read_text(), layer_table(packages))
    stale = [
        p for p, new in ((PICTURE, svg), (ARCHITECTURE, doc.encode())) if not p.is_file() or p.read_bytes() != new
    ]
    if args.check:
        print("\n".join(f"out of date: {p.relative_to(REPO)}" for p in stale) or "up to date")
        return 1 if stale else 0
    PICTURE.write_bytes(svg)
    ARCHITECTURE.write_text(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
