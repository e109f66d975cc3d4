"""Compare methods like the papers: ``cooklab evaluate CONFIG.yaml`` over methods x grids x recipes x seeds.

* ``config`` -- the YAML format (``EvalConfig``, ``load_config``);
* ``recipe_sets`` -- the four recipe sources (toy, folder, JSON/JSONL, RecipeGen-style layout);
* ``methods`` -- each paper's method, its ablations and the baselines behind one call (``METHODS``);
* ``store`` -- one folder per unit, ``unit.json`` written last: a killed run resumes exactly;
* ``scoring_keys`` -- what each stored score was measured with (backbone weights, masks, protocol): a change rescores;
* ``run`` -- ``evaluate(config)``: split across ``accelerate launch`` processes, merged into ``results.jsonl``;
* ``scoring_backbones`` -- each metric's CLIP / DINOv2 by name (``"toy"``, a hub id, a folder), each loaded once;
* ``set_scoring`` -- the set-level metrics (4-way goal faithfulness), scored per row from the saved frames at merge;
* ``result_tables`` -- means with 95 % bootstrap intervals (recipes resampled), paired differences, each paper's
  layout, sweep plots;
* ``explorer`` -- the results in a notebook: one metric across rows, or one parameter's effect, with widgets.
"""

from .config import EvalConfig, load_config
from .methods import METHODS
from .result_tables import write_reports
from .run import evaluate
from .store import read_results

__all__ = ["METHODS", "EvalConfig", "evaluate", "load_config", "read_results", "write_reports"]
