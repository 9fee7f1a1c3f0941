"""``python -m serving serve ...`` / ``python -m serving serving manifests ...`` (same flags as
``mlsched``)."""

import sys

from components.cli_args import run_command, subcommand_parser
from serving.cli import add_manifests_parser, add_serve_parser

if __name__ == "__main__":
    parser = subcommand_parser("python -m serving", add_serve_parser, add_manifests_parser)
    sys.exit(run_command(parser))
