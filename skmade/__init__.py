"""skmade: MADE density estimators with the scikit-learn API, in PyTorch."""

from ._density import MADEDensity

__all__ = ["MADEDensity"]
__version__ = "0.1.0.dev0"
