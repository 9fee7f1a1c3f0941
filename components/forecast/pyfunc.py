"""The MLflow pyfunc wrapper of a saved :class:`~components.forecast.model.LoadForecaster`."""

from __future__ import annotations

import mlflow.pyfunc

ARTIFACT_KEY = "forecaster"


class ForecasterModel(mlflow.pyfunc.PythonModel):
    """``predict(features)`` -> per-row forecasts, as :meth:`LoadForecaster.predict`."""

    def load_context(self, context):
        from components.forecast.model import load_forecaster

        self.forecaster = load_forecaster(context.artifacts[ARTIFACT_KEY])

    def predict(self, context, model_input, params=None):
        return self.forecaster.predict(model_input)
