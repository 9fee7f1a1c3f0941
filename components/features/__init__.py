"""Node features: the feature definitions, their computation and the Feast store around them.

Importing this package does not import Feast; :mod:`components.features.feast_store` does.
"""

from components.features.definitions import (
    FEATURE_NAMES,
    FEATURE_SERVICE_NAME,
    FEATURES,
    ONLINE_LOOKBACK_SECONDS,
)
from components.features.engineering import (
    compute_node_features,
    latest_node_features,
    point_in_time_join,
    read_feature_table,
    write_feature_table,
)

__all__ = [
    "FEATURES",
    "FEATURE_NAMES",
    "FEATURE_SERVICE_NAME",
    "ONLINE_LOOKBACK_SECONDS",
    "compute_node_features",
    "latest_node_features",
    "point_in_time_join",
    "read_feature_table",
    "write_feature_table",
]
