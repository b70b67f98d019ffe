"""scikit-learn's common estimator checks."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmade import MADEDensity


def _expected_failed_checks(estimator):
    return {}


@parametrize_with_checks(
    [MADEDensity(hidden_layer_sizes=(8,), max_iter=5, random_state=0, device="cpu")],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
