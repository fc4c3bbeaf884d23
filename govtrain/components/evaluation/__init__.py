"""The model gate (the step is components.evaluation.step.evaluate) and its measurements, one module each."""
from govtrain.components.evaluation.step import evaluate

__all__ = ["evaluate"]
