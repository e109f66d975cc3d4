"""The import structure of cooklab (docs/architecture.md, "Layers"): no circle, leaves stay leaves, no upward import.

Read from the source with ``ast``: every ``import`` at the top of a module or inside a function
counts (a lazy import is still a dependency); imports under ``if TYPE_CHECKING:`` do not (they
are annotations only and never run).
"""

import ast
import graphlib
from pathlib import Path

import cooklab

ROOT = Path(cooklab.__file__).parent

# Lowest first; a module may import its own layer and the layers below (package __init__ files
# are facades that re-export, and are not checked).
LAYERS = [
    (
        "foundation",
        [
            "cooklab.errors",
            "cooklab.fileio",
            "cooklab.recipe",
            "cooklab.word_tokenizers",
            "cooklab.hub",
            "cooklab.versions",
            "cooklab.grounding.base",
        ],
    ),  # grounding.base: the MaskProvider protocol and boxes, no model
    (
        "toy world",
        [
            "cooklab.toykitchen.world",
            "cooklab.toykitchen.captions",
            "cooklab.toykitchen.recipes",
            "cooklab.toykitchen.dataset",
            "cooklab.toykitchen.oracle",
        ],
    ),
    (
        "models and planners",
        [
            "cooklab.models",
            "cooklab.toykitchen.models",
            "cooklab.grounding",
            "cooklab.agent",
            "cooklab.metrics.base",
            "cooklab.metrics.clip_score",
        ],
    ),  # the CLIP backbone that toy_clip() returns
    (
        "mechanisms",
        [
            "cooklab.recipe_diffusion.noise_levels",
            "cooklab.recipe_diffusion.region_noise",
            "cooklab.recipe_diffusion.kv_sharing",
            "cooklab.recipe_diffusion.records",
            "cooklab.cookanything.regional",
            "cooklab.cookanything.regional_unet",
            "cooklab.cookanything.cross_region_kv",
            "cooklab.cookanything.flexible_rope",
            "cooklab.cookanything.cscc",
            "cooklab.cookanything.chunked",
            "cooklab.instrument.locate",
            "cooklab.instrument.observer",
            "cooklab.instrument.pooling",
        ],
    ),
    (
        "pipelines",
        [
            "cooklab.pipeline_base",
            "cooklab.recipe_diffusion.pipeline",
            "cooklab.cookanything.pipeline",
            "cooklab.baselines",
            "cooklab.cookanything.lora",
        ],
    ),  # baselines: the paper's comparison methods, built on the Recipe Diffusion pipeline
    (
        "instrument and viz",
        [
            "cooklab.instrument.trace",
            "cooklab.instrument.unet_capture",
            "cooklab.instrument.flux_capture",
            "cooklab.instrument.summaries",
            "cooklab.viz",
        ],
    ),
    ("metrics", ["cooklab.metrics"]),  # measures outputs; no pipeline imports it
    (
        "applications",
        [
            "cooklab.evaluation",
            "cooklab.training",
            "cooklab.toykitchen.train",
            "cooklab.toykitchen.clip",
            "cooklab.toykitchen.generated",
            "cooklab.toykitchen.evaluate",
            "cooklab.toykitchen.detection",
            "cooklab.report",
            "cooklab.named_runs",
            "cooklab.runs",
            "cooklab.demo",
            "cooklab.gallery",
            "cooklab.scoring",
            "cooklab.cli_options",
            "cooklab.cli",
            "cooklab.__main__",
        ],
    ),
]


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _module_paths() -> dict[str, Path]:
    return {
        ".".join(("cooklab", *p.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__"): p
        for p in ROOT.rglob("*.py")
    }


def cooklab_imports() -> dict[str, set[str]]:
    """Every cooklab module -> the cooklab modules it imports (at the top or inside functions)."""
    paths = _module_paths()
    graph = {}
    for name, path in paths.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
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
        # importing a.b.c also runs a.b's __init__ (not counting the packages this module sits in)
        imported |= {target.rsplit(".", n)[0] for target in set(imported) for n in range(1, target.count(".") + 1)}
        graph[name] = {target for target in imported if target in paths and not f"{name}.".startswith(f"{target}.")}
    return graph


def layer_of(module: str) -> int | None:
    """Index in LAYERS of the entry that is ``module`` or a package holding it (None: a facade or unlisted)."""
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def test_cooklab_modules_import_each_other_without_cycles():
    graphlib.TopologicalSorter(cooklab_imports()).prepare()  # raises CycleError naming the circle


def test_tokenizers_and_hub_helpers_are_leaves():
    graph = cooklab_imports()
    assert graph["cooklab.word_tokenizers"] == set()
    assert graph["cooklab.hub"] == {"cooklab.errors"}
    assert "cooklab.models" not in graph["cooklab.toykitchen.models"]


def test_every_module_has_a_layer():
    paths = _module_paths()
    facades = {name for name, path in paths.items() if path.name == "__init__.py"}
    assert [name for name in paths if name not in facades and layer_of(name) is None] == []


def test_no_layer_imports_a_higher_layer():
    paths = _module_paths()
    upward = []
    for module, targets in cooklab_imports().items():
        if paths[module].name == "__init__.py":
            continue
        for target in targets:
            if paths[target].name == "__init__.py":
                continue  # a package's facade runs on any import of its modules
            if layer_of(target) > layer_of(module):
                upward.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                )
    assert upward == []
