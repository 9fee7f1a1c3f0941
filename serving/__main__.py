"""``python -m serving serve ...`` / ``python -m serving serving manifests ...`` (same flags as
``mlsched``)."""

from __future__ import annotations

import argparse
import sys

from components.errors import MlschedError
from serving.cli import add_manifests_parser, add_serve_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving")
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(commands)
    add_manifests_parser(commands)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except MlschedError as error:
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
