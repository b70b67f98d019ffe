"""scikit-learn's common estimator checks."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmade import MADEDensity, MADEOutlierDetector, MAFDensity


def _expected_failed_checks(estimator):
    if isinstance(estimator, MADEOutlierDetector):
        return {
            "check_sample_weight_equivalence_on_dense_data": (
                "The density is fitted by mini-batch stochastic gradient descent. "
                "Weighting a row by 2 and repeating it give the same objective but "
                "different mini-batches, so the fits reach different points; the "
                "equivalence holds in expectation, which "
                "tests/test_density.py::test_sample_weight_matches_duplicated_rows_"
                "in_expectation checks. scikit-learn runs this check on MLPs only "
                "with the deterministic lbfgs solver for the same reason."
            )
        }
    return {}


@parametrize_with_checks(
    [
        MADEDensity(hidden_layer_sizes=(8,), max_iter=5, random_state=0, device="cpu"),
        MADEDensity(max_iter=5, random_state=0, device="cpu"),  # default architecture
        MAFDensity(
            n_flows=2, hidden_layer_sizes=(8,), max_iter=5, random_state=0, device="cpu"
        ),
        MAFDensity(
            n_flows=2,
            hidden_layer_sizes=(8,),
            n_components=2,
            batch_norm=False,
            max_iter=5,
            random_state=0,
            device="cpu",
        ),
        MADEOutlierDetector(
            MADEDensity(
                hidden_layer_sizes=(8,), max_iter=20, random_state=0, device="cpu"
            )
        ),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
