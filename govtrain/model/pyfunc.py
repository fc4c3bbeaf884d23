"""The MLflow pyfunc for a govtrain model, logged as code (MLflow's models-from-code), so loading it
unpickles nothing: the class comes from this file and the weights from safetensors."""
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class GovtrainModel(PythonModel):
    def load_context(self, context):
        from govtrain.model.network import LoadedModel

        self.model = LoadedModel(context.artifacts["model_dir"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Labels and class probabilities, or predictions and their interval (LoadedModel.predict)."""
        return self.model.predict(model_input)


mlflow.models.set_model(GovtrainModel())
