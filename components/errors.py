"""Errors that mean "the user gave us something we cannot use", shown without a traceback."""


class MlschedError(Exception):
    """A user-facing error: the CLI prints its message and exits with status 2."""


class ContractError(MlschedError):
    """Input that breaks one of the data contracts in :mod:`components.contracts`."""
