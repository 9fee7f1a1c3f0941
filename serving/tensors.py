"""Named tensors in and out of KServe requests (v1 ``instances`` and v2 Open Inference Protocol).

Every check raises :class:`kserve.errors.InvalidInput`, which KServe's model server answers with
HTTP 400 and ``{"error": message}``; the messages name the model, the input and what was expected.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput

NUMERIC_DATATYPES = frozenset(
    {
        "FP16",
        "FP32",
        "FP64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    }
)
_NUMPY_DATATYPES = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.int64): "INT64",
    np.dtype(np.int32): "INT32",
    np.dtype(bool): "BOOL",
}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor: its name, v2 datatype and shape (``-1`` for any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    required: bool = True

    def metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def describe(self) -> str:
        dims = ", ".join("n" if d == -1 else str(d) for d in self.shape)
        return f"{self.datatype} [{dims}]"


def v2_datatypes(request: InferRequest) -> dict[str, str]:
    """The declared v2 datatype of each input, by name."""
    return {tensor.name: tensor.datatype for tensor in request.inputs}


def v2_inputs(model: str, request: InferRequest) -> dict[str, np.ndarray]:
    """The request's inputs by name, as numpy arrays of their declared shapes.

    Raises:
        InvalidInput: a duplicate name, an unknown datatype, or data that does not fill the shape.
    """
    arrays: dict[str, np.ndarray] = {}
    for tensor in request.inputs:
        name = tensor.name
        if name in arrays:
            raise InvalidInput(f"model {model}: input {name!r} is given twice")
        shape = tensor.shape
        if not isinstance(shape, (list, tuple)) or not all(
            isinstance(d, (int, np.integer)) and d >= 0 for d in shape
        ):
            raise InvalidInput(f"model {model}: input {name!r}: bad shape {shape!r}")
        if tensor.datatype == "BYTES":
            arrays[name] = _bytes_tensor(model, name, tensor, tuple(shape))
            continue
        try:
            arrays[name] = tensor.as_numpy()
        except InvalidInput:
            raise InvalidInput(
                f"model {model}: input {name!r}: unknown datatype {tensor.datatype!r}"
            ) from None
        except (TypeError, ValueError) as error:
            size = len(tensor.data) if isinstance(tensor.data, list) else "?"
            raise InvalidInput(
                f"model {model}: input {name!r}: data ({size} values) does not fit datatype "
                f"{tensor.datatype} and shape {list(shape)}: {error}"
            ) from None
    return arrays


def _bytes_tensor(model: str, name: str, tensor, shape: tuple[int, ...]) -> np.ndarray:
    try:
        values = tensor.as_numpy().reshape(-1)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"model {model}: input {name!r}: {error}") from None
    text = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    array = np.array(text, dtype=object)
    if array.size != int(np.prod(shape)):
        raise InvalidInput(
            f"model {model}: input {name!r}: {array.size} values do not fill shape {list(shape)}"
        )
    return array.reshape(shape)


def numeric(
    model: str, arrays: Mapping[str, np.ndarray], spec: TensorSpec, datatypes: Mapping[str, str]
) -> np.ndarray | None:
    """Input ``spec.name`` as float32, checked against ``spec.shape`` (None if optional, absent).

    Raises:
        InvalidInput: missing, not numeric, or of another rank or fixed dimension.
    """
    if spec.name not in arrays:
        if not spec.required:
            return None
        raise InvalidInput(
            f"model {model}: missing input {spec.name!r} ({spec.describe()}); "
            f"got {sorted(arrays) or 'no inputs'}"
        )
    datatype = datatypes.get(spec.name, "FP32")
    if datatype not in NUMERIC_DATATYPES:
        raise InvalidInput(
            f"model {model}: input {spec.name!r} has datatype {datatype}, expected {spec.datatype}"
        )
    array = arrays[spec.name]
    check_shape(model, spec, array.shape)
    return np.asarray(array, dtype=np.float32)


def check_shape(model: str, spec: TensorSpec, shape: Sequence[int]) -> None:
    """Raise InvalidInput unless ``shape`` matches ``spec.shape`` (``-1`` matches any size)."""
    if len(shape) != len(spec.shape) or any(
        want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)
    ):
        raise InvalidInput(
            f"model {model}: input {spec.name!r} has shape {list(shape)}, "
            f"expected {spec.describe()}"
        )


def v2_response(
    model: str, request: InferRequest, outputs: Mapping[str, np.ndarray]
) -> InferResponse:
    """An InferResponse with one output tensor per array (FP32, FP64, INT or BOOL)."""
    tensors = []
    for name, array in outputs.items():
        array = np.ascontiguousarray(array)
        datatype = _NUMPY_DATATYPES.get(array.dtype)
        if datatype is None:
            array = array.astype(np.float32)
            datatype = "FP32"
        tensors.append(
            InferOutput(name=name, shape=list(array.shape), datatype=datatype, data=array)
        )
    return InferResponse(
        response_id=request.id or str(uuid.uuid4()),
        model_name=model,
        infer_outputs=tensors,
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )


def v1_instances(model: str, payload: object) -> list:
    """The ``instances`` list of a v1 request body.

    Raises:
        InvalidInput: no JSON object, no ``instances`` key, or an empty list.
    """
    if not isinstance(payload, dict):
        raise InvalidInput(f"model {model}: v1 body must be a JSON object with 'instances'")
    instances = payload.get("instances")
    if not isinstance(instances, list):
        raise InvalidInput(f"model {model}: v1 body needs an 'instances' list")
    return instances


def v1_matrix(model: str, instances: list, columns: Sequence[str]) -> np.ndarray:
    """Rows of ``instances`` as float32 [n, len(columns)]; each row is a list of numbers in
    ``columns`` order or an object ``{column: value}`` (a missing key or ``null`` is NaN).

    Raises:
        InvalidInput: a row of the wrong length or type, or a value that is not a number.
    """
    width = len(columns)
    matrix = np.full((len(instances), width), np.nan, dtype=np.float32)
    index = {name: i for i, name in enumerate(columns)}
    for row, instance in enumerate(instances):
        if isinstance(instance, dict):
            unknown = [key for key in instance if key not in index]
            if unknown:
                raise InvalidInput(f"model {model}: instance {row}: unknown field(s) {unknown[:5]}")
            keys = [index[key] for key in instance]
            values = list(instance.values())
        elif isinstance(instance, list):
            if len(instance) != width:
                raise InvalidInput(
                    f"model {model}: instance {row} has {len(instance)} values, expected {width}"
                )
            keys, values = list(range(width)), instance
        else:
            raise InvalidInput(
                f"model {model}: instance {row} must be a list of {width} numbers or an object"
            )
        matrix[row, keys] = _floats(model, f"instance {row}", values)
    return matrix


def _floats(model: str, where: str, values: list) -> np.ndarray:
    if any(isinstance(v, (bool, str, list, dict)) for v in values):
        raise InvalidInput(f"model {model}: {where}: values must be numbers or null")
    try:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"model {model}: {where}: {error}") from None


def v1_array(model: str, where: str, value: object, spec: TensorSpec) -> np.ndarray:
    """A nested list from a v1 instance as float32 of ``spec.shape``.

    Raises:
        InvalidInput: ragged, non-numeric, or of the wrong shape.
    """
    if value is None:
        raise InvalidInput(f"model {model}: {where}: missing {spec.name!r} ({spec.describe()})")
    try:
        array = np.array(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise InvalidInput(
            f"model {model}: {where}: {spec.name!r} must be numbers of {spec.describe()}: {error}"
        ) from None
    try:
        check_shape(model, spec, array.shape)
    except InvalidInput:
        raise InvalidInput(
            f"model {model}: {where}: {spec.name!r} has shape {list(array.shape)}, "
            f"expected {spec.describe()}"
        ) from None
    return array
