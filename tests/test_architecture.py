"""The import structure of cooklab (docs/architecture.md, "Layers"): packages and modules in layers, no circle.

Read from the source with ``ast`` by ``docs/package_graph.py`` (the script that draws the package
graph): every ``import`` at the top of a module or inside a function counts (a lazy import is
still a dependency); imports under ``if TYPE_CHECKING:`` do not (they are annotations only and
never run). Packages are checked against its ``PACKAGE_LAYERS``, modules against ``LAYERS`` here.
"""

import ast
import graphlib
import importlib.util
from pathlib import Path

import cooklab

ROOT = Path(cooklab.__file__).parent
_spec = importlib.util.spec_from_file_location("package_graph", ROOT.parent / "docs" / "package_graph.py")
package_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(package_graph)
PACKAGE_LAYERS = package_graph.PACKAGE_LAYERS
#: the packages that hold the pipelines (they reach the Toy Kitchen only through public registries)
PIPELINE_PACKAGES = ("pipeline_base", "recipe_diffusion", "cookanything")

# Lowest first; a module may import its own layer and the layers below (package __init__ files
# are facades that re-export, and are not checked).
LAYERS = [
    (
        "foundation",
        [
            "cooklab.errors",
            "cooklab.console",
            "cooklab.checks",
            "cooklab.fileio",
            "cooklab.resources",
            "cooklab.recipe",
            "cooklab.word_tokenizers",
            "cooklab.hub",
            "cooklab.versions",
            "cooklab.images",
            "cooklab.grounding.provider",
        ],
    ),  # grounding.base: the MaskProvider protocol and boxes, no model
    (
        "toy world",
        [
            "cooklab.toykitchen.world",
            "cooklab.toykitchen.captions",
            "cooklab.toykitchen.recipes",
            "cooklab.toykitchen.recipes_v3",
            "cooklab.toykitchen.scenes_v3",
            "cooklab.toykitchen.dataset",
            "cooklab.toykitchen.palette_reading",
            "cooklab.toykitchen.oracle",
        ],
    ),
    (
        "models and planners",
        [
            "cooklab.backbones",
            "cooklab.models",
            "cooklab.toykitchen.architectures",
            "cooklab.grounding",
            "cooklab.agent",
        ],
    ),  # backbones: the CLIP that toy_clip() returns
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
            "cooklab.cookanything.flow_matching",
            "cooklab.instrument.locate",
            "cooklab.instrument.observer",
            "cooklab.instrument.pooling",
            "cooklab.instrument.words",
        ],
    ),
    (
        "pipelines",
        [
            "cooklab.size_guard",
            "cooklab.pipeline_base",
            "cooklab.recipe_diffusion.inputs",
            "cooklab.recipe_diffusion.pipeline",
            "cooklab.cookanything.settings",
            "cooklab.cookanything.canvas",
            "cooklab.cookanything.denoising",
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
            "cooklab.instrument.word_maps",
            "cooklab.viz",
        ],
    ),
    ("metrics", ["cooklab.metrics"]),  # measures outputs; no pipeline imports it
    (
        "applications",
        [
            "cooklab.evaluation",
            "cooklab.training",
            "cooklab.toykitchen.training_config",
            "cooklab.toykitchen.training_loop",
            "cooklab.toykitchen.training_captions",
            "cooklab.toykitchen.panels",
            "cooklab.toykitchen.worlds",
            "cooklab.toykitchen.context_captions",
            "cooklab.toykitchen.autoencoder_training",
            "cooklab.toykitchen.diffusion_training",
            "cooklab.toykitchen.clip_training",
            "cooklab.toykitchen.train",
            "cooklab.toykitchen.clip_model",
            "cooklab.toykitchen.generated",
            "cooklab.toykitchen.evaluate",
            "cooklab.toykitchen.grounding_data",
            "cooklab.toykitchen.grounding_losses",
            "cooklab.toykitchen.grounding_training",
            "cooklab.toykitchen.grounding_evaluation",
            "cooklab.report",
            "cooklab.named_runs",
            "cooklab.runs",
            "cooklab.demo",
            "cooklab.course",
            "cooklab.gallery",
            "cooklab.scoring",
            "cooklab.cli",
            "cooklab.__main__",
        ],
    ),
]


def _module_paths() -> dict[str, Path]:
    return package_graph.module_paths(ROOT)


def cooklab_imports() -> dict[str, set[str]]:
    """Every cooklab module -> the cooklab modules it imports (at the top or inside functions)."""
    return package_graph.cooklab_imports(ROOT)


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
    assert not [target for target in graph["cooklab.models.toy"] if target.startswith("cooklab.toykitchen")]


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


def test_packages_import_each_other_without_cycles():
    packages = package_graph.package_imports(cooklab_imports())
    graphlib.TopologicalSorter({p: set(targets) for p, targets in packages.items()}).prepare()  # CycleError names it


def test_every_package_has_a_layer():
    packages = {package_graph.package_of(name) for name in _module_paths()} - {None}
    assert sorted(p for p in packages if package_graph.layer_of(p) is None) == []
    listed = [p for _, members in PACKAGE_LAYERS for p in members]
    assert sorted(set(listed) - packages) == [] and len(listed) == len(set(listed))


def test_no_package_imports_a_higher_layer():
    upward = [
        f"{source} ({PACKAGE_LAYERS[package_graph.layer_of(source)][0]}) imports {target}: {edges}"
        for source, targets in package_graph.package_imports(cooklab_imports()).items()
        for target, edges in targets.items()
        if package_graph.layer_of(target) > package_graph.layer_of(source)
    ]
    assert upward == []


def test_no_pipeline_module_imports_the_toy_kitchen():
    reach_ins = [
        f"{module} -> {target}"
        for module, targets in cooklab_imports().items()
        if package_graph.package_of(module) in PIPELINE_PACKAGES
        for target in targets
        if package_graph.package_of(target) == "toykitchen"
    ]
    assert reach_ins == []


def test_every_package_index_names_all_its_modules():
    missing = []
    for init in sorted(ROOT.rglob("*/__init__.py")):
        index = ast.get_docstring(ast.parse(init.read_text())) or ""
        for module in sorted(init.parent.glob("*.py")):
            name = module.stem
            if name != "__init__" and f"``{name}``" not in index and f"``{name}.py``" not in index:
                missing.append(f"{init.parent.name}/{module.name}")
    assert missing == []


def test_the_package_graph_picture_and_table_are_up_to_date():
    packages = package_graph.package_imports(cooklab_imports())
    assert package_graph.PICTURE.read_bytes() == package_graph.picture(packages), "run python docs/package_graph.py"
    table = package_graph.layer_table(packages)
    text = package_graph.ARCHITECTURE.read_text()
    assert package_graph.with_table(text, table) == text, "run python docs/package_graph.py"
