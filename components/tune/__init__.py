"""Hyperparameter tuning: Katib Experiments, run locally with Optuna or on a cluster."""
