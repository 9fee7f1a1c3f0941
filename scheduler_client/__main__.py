"""``python -m scheduler_client extender ...``: the extender without the main ``mlsched`` CLI."""

from __future__ import annotations

import argparse
import sys

from components.errors import MlschedError
from scheduler_client.cli import add_extender_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scheduler_client")
    commands = parser.add_subparsers(dest="command", required=True)
    add_extender_parser(commands)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except MlschedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
