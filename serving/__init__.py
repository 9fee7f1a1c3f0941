"""KServe predictors for the forecaster, the anomaly detector and the DQN, their model server and
their InferenceService manifests."""
