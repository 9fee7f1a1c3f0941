"""The local harness: the stack of real servers (`stack`) and the end-to-end replay (`replay`).

Never imported by a lifecycle stage (import-linter contract in pyproject.toml)."""
