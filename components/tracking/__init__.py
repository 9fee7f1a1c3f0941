"""MLflow tracking helpers and the promotion gate shared by every model."""
