"""skmade: MADE density estimators with the scikit-learn API, in PyTorch."""

from ._density import MADEDensity
from ._impute import MADEImputer
from ._maf import MAFDensity
from ._mixture import DensityMixture
from ._outlier import MADEOutlierDetector
from ._regressor import MADERegressor

__all__ = [
    "DensityMixture",
    "MADEDensity",
    "MADEImputer",
    "MADEOutlierDetector",
    "MADERegressor",
    "MAFDensity",
]
__version__ = "0.1.0.dev0"
