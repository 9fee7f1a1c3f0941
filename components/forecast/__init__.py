"""Node load forecaster: XGBoost on the node features, predicting CPU and memory at horizons."""
