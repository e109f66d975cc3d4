"""``cooklab``'s entry point: the parser of every subcommand, and ``main``, which dispatches and prints errors."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

import cooklab
from cooklab.console import job_console
from cooklab.errors import CooklabError

from .commands import (
    add_course_parser,
    add_demo_parser,
    add_evaluate_parser,
    add_gallery_parser,
    add_plan_parser,
    add_score_parser,
    add_train_lora_parser,
    course_command,
    demo_command,
    evaluate_command,
    gallery_command,
    plan_command,
    score_command,
    train_lora_command,
)
from .generate import generate_command
from .options import add_generate_parser, add_quiet
from .toykitchen import add_toykitchen_parser, toykitchen_command

__all__ = ["LONG_COMMANDS", "build_parser", "main"]

#: the commands that load models and run for a while: each takes ``--quiet`` (``toykitchen train`` too)
LONG_COMMANDS = ("generate", "demo", "gallery", "score", "evaluate", "train-lora")


def build_parser() -> argparse.ArgumentParser:
    """The ``cooklab`` parser: one subcommand per command, each added by its ``add_*_parser`` function.

    ``generate``'s parser is in ``options.py``; the others sit with their commands (``commands.py``,
    ``toykitchen.py``).
    """
    parser = argparse.ArgumentParser(
        prog="cooklab",
        description="Consistent multi-step recipe images with diffusion models (Recipe Diffusion, CookAnything).",
    )
    parser.add_argument("--version", action="version", version=f"cooklab {cooklab.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    add_generate_parser(commands)
    add_plan_parser(commands)
    add_demo_parser(commands)
    add_gallery_parser(commands)
    add_score_parser(commands)
    add_evaluate_parser(commands)
    add_train_lora_parser(commands)
    add_toykitchen_parser(commands)
    add_course_parser(commands)
    for name in LONG_COMMANDS:
        add_quiet(commands.choices[name])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cooklab`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error (argparse has printed it)
        return exit_.code if isinstance(exit_.code, int) else 2
    command = shlex.join(["cooklab", *argv])
    handlers = {
        "generate": generate_command,
        "plan": plan_command,
        "demo": demo_command,
        "score": score_command,
        "evaluate": evaluate_command,
        "train-lora": train_lora_command,
        "toykitchen": toykitchen_command,
        "gallery": gallery_command,
        "course": course_command,
    }
    long_running = "quiet" in args  # the model-loading commands: diffusers' and transformers' warnings too
    try:
        with job_console(quiet=long_running and args.quiet, libraries=long_running):
            return handlers[args.command](args, command)
    except CooklabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (files already written are complete; the rest were not written)", file=sys.stderr)
        return 130
