"""The leakage checks of the data gate (the step is components.leakage.step.leakage)."""
from govtrain.components.leakage.step import leakage

__all__ = ["leakage"]
