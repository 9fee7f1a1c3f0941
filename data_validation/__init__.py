"""The Great Expectations gate for node metrics: validate before training.

Great Expectations itself is imported only when a validation runs, so that importing this package
(for instance to register the ``mlsched validate`` command) stays fast.
"""

from data_validation.gate import (
    DATA_DOCS_DIR,
    RESULT_FILE,
    ExpectationFailure,
    ValidationReport,
    parse_reference_time,
    run_validation,
    validate_node_metrics_frame,
    validate_node_metrics_path,
)
from data_validation.profile import load_raw_node_metrics
from data_validation.thresholds import (
    DEFAULT_THRESHOLDS_FILE,
    Thresholds,
    ThresholdsError,
    load_thresholds,
)

__all__ = [
    "DATA_DOCS_DIR",
    "DEFAULT_THRESHOLDS_FILE",
    "RESULT_FILE",
    "ExpectationFailure",
    "Thresholds",
    "ThresholdsError",
    "ValidationReport",
    "load_raw_node_metrics",
    "load_thresholds",
    "parse_reference_time",
    "run_validation",
    "validate_node_metrics_frame",
    "validate_node_metrics_path",
]
