"""The node anomaly detector: an Isolation Forest ensemble over robust per-node features.

Modules: ``features`` (robust per-node statistics), ``ensemble`` (the forests and their combined
score), ``calibrate`` (the alarm threshold), ``events`` (alarms to events), ``evaluation`` (event
precision, window recall, point FPR), ``detector`` (the fitted detector and the z-score
baseline), ``evaluate`` (fit on the first part, evaluate on the rest), ``model`` (saving and
loading, MLflow pyfunc), ``train`` (the entrypoint), ``cli`` (``mlsched evaluate anomaly``),
``heldout`` (leave-one-series-out choice of the alarm settings on labelled real series).
"""
