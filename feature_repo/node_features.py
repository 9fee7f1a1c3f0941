"""What ``feast apply`` registers from this repository: the node-feature objects of
:func:`components.features.feast_definitions.build_definitions` over the feature table at
``$MLSCHED_FEATURE_TABLE`` (default: ``data/features/node_features.parquet`` of this checkout,
where ``mlsched features`` writes it), with the anomaly view when the anomaly table
(``<table stem>_anomaly.parquet``, ``mlsched features --anomaly``) lies beside it.
"""

import os
from pathlib import Path

from components.features.anomaly_group import anomaly_table_path
from components.features.feast_definitions import build_definitions

TABLE_VARIABLE = "MLSCHED_FEATURE_TABLE"
_table = Path(
    os.environ.get(TABLE_VARIABLE)
    or Path(__file__).resolve().parent.parent / "data/features/node_features.parquet"
).resolve()
_anomaly_table = anomaly_table_path(_table)
_repo = build_definitions(
    _table, anomaly_table_path=_anomaly_table if _anomaly_table.is_file() else None
)

# feast apply registers the Feast objects it finds among a module's attributes, by name.
globals().update({obj.name: obj for obj in _repo.objects()})
