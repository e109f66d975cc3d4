"""The ``cooklab`` command: parse the command line and hand each command to the module that does it.

    cooklab demo [--out outputs/demo]          offline end-to-end run of both pipelines on the Toy Kitchen models
    cooklab generate RECIPE [--model ID] --out DIR [options]

Modules: ``main.py`` (``build_parser`` and ``main``: parse, dispatch, print errors), ``options.py``
(``cooklab generate``'s parser, which options belong to which pipeline and their defaults, and the
options several commands share), ``generate.py`` (``cooklab generate``: options checked before a
model loads, through the pipelines' own checks; the call the options describe), ``commands.py``
(the parsers and commands of ``plan``, ``demo``, ``gallery``, ``score``, ``evaluate``,
``train-lora``: each hands its options to its module: ``cooklab.agent``, ``cooklab.demo``,
``cooklab.gallery``, ``cooklab.scoring``, ``cooklab.evaluation``, ``cooklab.training``) and
``toykitchen.py`` (``cooklab toykitchen train`` / ``evaluate-grounding``: parser and command).

``generate`` loads Recipe Diffusion (default) or, with ``--pipeline cookanything``, CookAnything for
``--model`` (``toy``: the Toy Kitchen models, ``tiny``: random weights, else a hub id or folder;
``cooklab.runs.load_pipeline``) and makes one run with ``cooklab.runs.run_and_report``. Errors
cooklab raises on purpose (bad recipe, impossible setting, missing checkpoint) are printed as
``error: <message>`` with exit code 2; anything else is a bug and shows its traceback.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
