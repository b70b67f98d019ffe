"""Saving and loading without pickle: ``skops.io`` with skmade's classes trusted."""

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from skmade import MADEDensity, MADEOutlierDetector, MAFDensity

sio = pytest.importorskip("skops.io")
pd = pytest.importorskip("pandas")

_FAST = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0, device="cpu")


def _mixed_frame(n=120):
    rng = np.random.RandomState(0)
    z = rng.standard_normal((n, 2))
    return pd.DataFrame(
        {
            "size": z[:, 0] * 3 + 10,
            "colour": pd.Categorical(np.where(z[:, 1] > 0, "red", "blue")),
            "flag": (z[:, 0] + z[:, 1] > 0).astype(int),
        }
    )


def _cases():
    X = np.random.RandomState(1).standard_normal((120, 3))
    return {
        "made-mixed-frame": (
            MADEDensity(**_FAST, n_masks=2, order_agnostic=True),
            _mixed_frame(),
        ),
        # Any order: a Gaussian base over the size and the flag, visibility weights.
        "made-any-order-frame": (
            MADEDensity(**_FAST, allow_missing=True),
            _mixed_frame(),
        ),
        "maf-mog": (MAFDensity(**_FAST, n_flows=2, n_components=2), X),
        "detector": (MADEOutlierDetector(MADEDensity(**_FAST)), X),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_skops_round_trip_in_a_fresh_process_gives_identical_scores(case, tmp_path):
    est, X = _cases()[case]
    est.fit(X)
    path = tmp_path / "model.skops"
    sio.dump(est, path)
    # Nothing but skmade's own estimators needs trusting.
    untrusted = sio.get_untrusted_types(file=path)
    assert untrusted and all(name.startswith("skmade.") for name in untrusted)
    with pytest.raises(Exception, match=r"(?i)untrusted"):
        sio.load(path)
    data = tmp_path / "X.pkl"
    data.write_bytes(pickle.dumps(X))
    script = textwrap.dedent(
        f"""
        import pickle, numpy as np, skops.io as sio
        path = {str(path)!r}
        est = sio.load(path, trusted=sio.get_untrusted_types(file=path))
        X = pickle.loads(open({str(data)!r}, "rb").read())
        np.save({str(tmp_path / "scores.npy")!r}, est.score_samples(X))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert_array_equal(np.load(tmp_path / "scores.npy"), est.score_samples(X))


def test_a_loaded_model_samples_and_keeps_training_like_the_original():
    X = np.random.RandomState(0).standard_normal((150, 3))
    est = MADEDensity(**_FAST, early_stopping=False)
    est.partial_fit(X)
    saved = sio.dumps(est)
    loaded = sio.loads(saved, trusted=sio.get_untrusted_types(data=saved))
    assert_array_equal(loaded.sample(4, random_state=0), est.sample(4, random_state=0))
    # The shuffling stream continues; the optimizer restarts in both (it is not
    # saved), so a pickled copy is the reference.
    reference = pickle.loads(pickle.dumps(est))
    assert_array_equal(
        loaded.partial_fit(X).score_samples(X),
        reference.partial_fit(X).score_samples(X),
    )


def test_the_saved_state_holds_no_torch_objects():
    import torch

    est = MAFDensity(**_FAST, n_flows=2, n_components=2).fit(
        np.random.RandomState(0).standard_normal((100, 2))
    )

    def walk(value):
        assert not isinstance(value, torch.Tensor | torch.nn.Module)
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(est.__getstate__())
