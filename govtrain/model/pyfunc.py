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
        """Probability of the positive class per row, with the model's temperature applied."""
        return pd.DataFrame({"probability": self.model.predict_proba(model_input)})


mlflow.models.set_model(GovtrainModel())
