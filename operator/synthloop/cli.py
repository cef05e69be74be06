"""The `synthloop` command: one entry point whose subcommands live in their own modules.

Each subcommand module exposes ``register(subparsers)`` and sets ``func`` on its parser,
so this file stays a table of contents and imports heavy modules only when used.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand name -> module that registers it
SUBCOMMANDS: dict[str, str] = {
    "local": "synthloop.local.cli",
    "operator": "synthloop.controllers.main",
    "report": "synthloop.report.cli",
    "crds": "synthloop.api.crdgen",
    "validate": "synthloop.api.check",
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthloop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, module in SUBCOMMANDS.items():
        if wanted is None or wanted == name:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
