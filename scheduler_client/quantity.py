"""Kubernetes resource quantities (``250m``, ``512Mi``, ``1G``, ``1.5``, ``2e3``) as numbers.

Follows ``k8s.io/apimachinery/pkg/api/resource``'s grammar::

    <quantity>        ::= <signedNumber><suffix>
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
    <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>

Values are exact (:class:`decimal.Decimal`); ``E`` alone is the exa suffix, ``E3`` an exponent.
A JSON number is accepted as well, as ``Quantity.UnmarshalJSON`` does.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from components.errors import MlschedError

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE]([+-]?[0-9]+))?"
)
_MAX_EXPONENT = 30


class QuantityError(MlschedError):
    """A resource quantity that is not in Kubernetes' quantity format."""


def parse_quantity(value: str | int | float, *, what: str = "quantity") -> Decimal:
    """The exact value of a Kubernetes quantity.

    Args:
        value: ``"250m"``, ``"512Mi"``, ``"1G"``, ``"2e3"``, ``4``...
        what: the field, named in the error message.

    Raises:
        QuantityError: for anything else (empty, spaces, unknown suffix, NaN).
    """
    if isinstance(value, bool):
        raise QuantityError(f"{what}: expected a quantity such as '250m' or '1Gi', got {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"{what}: {value!r} is not a finite quantity")
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise QuantityError(f"{what}: expected a quantity such as '250m' or '1Gi', got {value!r}")
    return _parse_text(value, what)


def _parse_text(text: str, what: str) -> Decimal:
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise QuantityError(
            f"{what}: {text!r} is not a Kubernetes quantity (examples: 250m, 1.5, 512Mi, 1G, 2e3)"
        )
    number, suffix, exponent = match.groups()
    try:
        amount = Decimal(number)
    except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
        raise QuantityError(f"{what}: {text!r} is not a Kubernetes quantity") from None
    if exponent is not None:
        power = int(exponent)
        if abs(power) > _MAX_EXPONENT:
            raise QuantityError(f"{what}: {text!r}: exponent out of range")
        return amount.scaleb(power)
    if suffix in _BINARY:
        return amount * _BINARY[suffix]
    return amount * _DECIMAL[suffix or ""]


# keyed on the text alone (the field named in an error is added by the callers): a cluster's
# nodes share a handful of allocatable values
@lru_cache(maxsize=4096)
def _cpu_cores_cached(text: str) -> float:
    return float(_parse_text(text, "quantity"))


@lru_cache(maxsize=4096)
def _whole_cached(text: str) -> int:
    return math.ceil(_parse_text(text, "quantity"))


def cpu_cores(value: str | int | float, *, what: str = "cpu") -> float:
    """CPU cores of a quantity: ``"250m"`` -> 0.25, ``"2"`` -> 2.0."""
    if isinstance(value, str):
        try:
            return _cpu_cores_cached(value)
        except QuantityError:
            pass  # parsed again below, to name the field
    return float(parse_quantity(value, what=what))


def whole_units(value: str | int | float, *, what: str = "memory") -> int:
    """A quantity as a whole number, rounded up as ``Quantity.Value()`` does (bytes, GPUs)."""
    if isinstance(value, str):
        try:
            return _whole_cached(value)
        except QuantityError:
            pass
    return math.ceil(parse_quantity(value, what=what))
