"""``python -m scheduler_client extender ...``: the extender without the main ``mlsched`` CLI."""

import sys

from components.cli_args import run_command, subcommand_parser
from scheduler_client.cli import add_extender_parser

if __name__ == "__main__":
    sys.exit(run_command(subcommand_parser("python -m scheduler_client", add_extender_parser)))
