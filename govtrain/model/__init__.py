"""The network: features, model, save/load (safetensors + JSON) and the MLflow pyfunc that serves it."""
from pathlib import Path

# The file MLflow logs as the model's code (models-from-code): loading it unpickles nothing.
PYFUNC_FILE = Path(__file__).with_name("pyfunc.py")
