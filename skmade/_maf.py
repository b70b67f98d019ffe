"""MAFDensity: a masked autoregressive flow with the scikit-learn API."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils._param_validation import StrOptions

from ._base import TorchDensity
from ._families import Gaussian, MixtureOfGaussians
from ._flows import MAF, FlowOutput
from ._masks import make_degrees
from ._nn import MADE
from ._params import TRAINING_CONSTRAINTS, count
from ._stream import as_float32_tensor


class MAFDensity(TorchDensity):
    """Density estimation with a masked autoregressive flow (MAF).

    A MAF (Papamakarios, Pavlakou and Murray, 2017) stacks ``n_flows`` Gaussian MADEs.
    Each one maps its input to noise, ``u_d = (x_d - mu_d(x_<d)) exp(-s_d(x_<d))``,
    in its own ordering (reversed, or random, from one MADE to the next), and the
    last noise is scored by a base density: a standard normal, or (with
    ``n_components > 1``) a MADE with mixture-of-Gaussians conditionals (MAF MoG).
    The log-density is the base's plus every layer's log-Jacobian, exact and
    normalized, in one pass per MADE. Each layer's log-scale is bounded,
    ``s = 3 tanh(raw / 3)``, so that no layer stretches its input more than
    ``exp(3)``-fold: unbounded layers stacked on quantized data blew single test rows
    up to log-densities of ``-1e7``. The bound does not stop a stack from compounding
    its layers' stretches on a handful of rows; what keeps tiny tables sane is early
    stopping's test against the start (see ``early_stopping``). Sampling inverts the
    MADEs one by one, each with MADE's incremental sampler.

    Parameters
    ----------
    n_flows : int, default=5
        Number of Gaussian MADEs in the stack.

    hidden_layer_sizes : int or array-like of shape (n_layers,), default=(64, 64)
        Hidden layers of every MADE (an int means one layer).

    n_components : int, default=1
        Components of the base density's conditionals; 1 is a standard normal base.

    batch_norm : bool, default=True
        Batch normalization (an invertible affine layer whose log-Jacobian is
        included) between consecutive MADEs. It normalizes with each mini-batch's
        statistics while training and with the training data's statistics, recomputed
        after every fit, when scoring and sampling.

    ordering : {'reverse', 'random'}, default='reverse'
        Ordering of each MADE relative to the previous one (the first MADE uses the
        column order): reversed, or a fresh random permutation.

    max_iter : int, default=1000
        Maximum number of epochs (passes over the training data).

    batch_size : int or 'auto', default='auto'
        Mini-batch size; ``'auto'`` is ``min(100, n_samples)``.

    learning_rate : {'constant', 'adaptive'}, default='adaptive'
        Learning-rate schedule, as in :class:`MADEDensity`: ``'adaptive'`` halves
        the rate after 2 epochs without progress.

    learning_rate_init : float, default=1e-3
        Initial learning rate of the Adam optimizer.

    alpha : float, default=1.0
        Strength of the L2 penalty on the MADEs' weights (``0.5 * alpha * ||W||^2 /
        n_samples`` added to the mean negative log-likelihood): the precision of a
        Gaussian prior on the weights. With ``sample_weight``, ``n_samples`` is the
        sum of the weights.

    early_stopping : bool or 'auto', default='auto'
        Hold out ``validation_fraction`` of the data (at least one row) and stop when
        its log-likelihood has not improved by ``tol`` for ``n_iter_no_change``
        epochs; the best weights are restored, and the trained model is kept only if
        its gain over the start (the identity flow: a standard normal after
        standardization) on the validation rows passes a one-sided paired t-test at
        97.5%. With ``True`` the split must leave two training rows; ``'auto'``
        splits whenever it can and keeps the start on a two-row table.

    validation_fraction : float, default=0.1
        Fraction of the training rows held out for early stopping.

    n_iter_no_change : int, default=10
        Number of epochs without improvement by at least ``tol`` before stopping.

    tol : float, default=1e-4
        Improvement (nats per row) that counts as progress.

    random_state : int, RandomState instance or None, default=None
        Seeds the orderings, degrees, initial weights, validation split and
        shuffling. No global random state is read or changed.

    verbose : bool or int, default=False
        Print one line per epoch: the training loss, the validation log-likelihood
        (with early stopping), the learning rate and the time since training began.
        When `tqdm <https://tqdm.github.io>`__ is installed (optional), the lines are
        written above a progress bar over ``max_iter`` epochs.

    warm_start : bool, default=False
        If True, a second :meth:`fit` continues training the fitted flow.

    device : str or torch.device, default='auto'
        Where the flow trains and scores: ``'auto'`` (CUDA when available, else the
        CPU), any torch device string (``'cuda:1'``, ``'mps'``) or a
        :class:`torch.device`.

    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted flow (in eval mode).

    orderings_ : ndarray of shape (n_flows, n_features)
        ``orderings_[i, j]``: the feature modelled ``j``-th by MADE ``i``.

    mean_, scale_ : ndarray of shape (n_features,)
        Per-feature mean and standard deviation used to standardize X (constant
        features get a scale of 1); densities are in the units of X.

    loss_curve_, learning_rate_curve_, best_loss_, validation_scores_, \
best_validation_score_, n_iter_, n_steps_
        As in :class:`MADEDensity`.

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``, when they are all strings.

    See Also
    --------
    MADEDensity : A single MADE, for continuous, discrete and mixed data.

    References
    ----------
    G. Papamakarios, T. Pavlakou, I. Murray. "Masked Autoregressive Flow for Density
    Estimation." NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from skmade import MAFDensity
    >>> rng = np.random.RandomState(0)
    >>> x = rng.randn(300)
    >>> X = np.column_stack([x, x**2 + 0.1 * rng.randn(300)])
    >>> maf = MAFDensity(n_flows=3, hidden_layer_sizes=16, max_iter=20,
    ...                  random_state=0).fit(X)
    >>> maf.score_samples(X[:2]).shape
    (2,)
    >>> maf.sample(3, random_state=0).shape
    (3, 2)
    """

    _parameter_constraints: dict = {
        "n_flows": [count(1)],
        "n_components": [count(1)],
        "batch_norm": ["boolean"],
        "ordering": [StrOptions({"reverse", "random"})],
        **TRAINING_CONSTRAINTS,
    }

    def __init__(
        self,
        *,
        n_flows=5,
        hidden_layer_sizes=(64, 64),
        n_components=1,
        batch_norm=True,
        ordering="reverse",
        max_iter=1000,
        batch_size="auto",
        learning_rate="adaptive",
        learning_rate_init=1e-3,
        alpha=1.0,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        random_state=None,
        verbose=False,
        warm_start=False,
        device="auto",
    ):
        self.n_flows = n_flows
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_components = n_components
        self.batch_norm = batch_norm
        self.ordering = ordering
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device

    def _structure(self) -> dict:
        return {
            "n_flows": self.n_flows,
            "hidden_layer_sizes": self._hidden_sizes(),
            "n_components": self.n_components,
            "batch_norm": self.batch_norm,
            "ordering": self.ordering,
        }

    def _column_kinds(self, X, frame_categories) -> list[str]:
        if frame_categories:
            j = next(iter(frame_categories))
            raise ValueError(
                f"Column {j} has a categorical (or string) dtype; MAFDensity models "
                "continuous columns only. Use MADEDensity for tables with "
                "categorical columns, or convert the column to numbers first."
            )
        return ["gaussian"] * X.shape[1]

    def _build_module(self, Z, weights, Z_val, weights_val, n_rows, hidden, rng):
        """A stack of MADEs that starts near the identity map."""
        n_features = Z.shape[1]
        orderings = np.empty((self.n_flows, n_features), dtype=np.int64)
        orderings[0] = np.arange(n_features)
        for i in range(1, self.n_flows):
            if self.ordering == "reverse":
                orderings[i] = orderings[i - 1][::-1]
            else:
                orderings[i] = rng.permutation(n_features)
        generator = self._torch_generator(rng)
        flows = []
        for ordering in orderings:
            degrees = make_degrees(ordering[None], hidden, rng)
            made = MADE([torch.from_numpy(d) for d in degrees], Gaussian.n_params)
            made.reset_parameters(generator)
            with torch.no_grad():  # start near the identity map
                made.layers[-1].bias.zero_()
            flows.append(made)
        base = family = None
        if self.n_components > 1:
            family = MixtureOfGaussians(self.n_components)
            ordering = orderings[-1][::-1].copy()
            degrees = make_degrees(ordering[None], hidden, rng)
            base = MADE([torch.from_numpy(d) for d in degrees], family.n_params)
            base.reset_parameters(generator)
            with torch.no_grad():
                bias = family.initial_bias(rng.randn(2000, n_features), np.ones(2000))
                base.layers[-1].bias.copy_(torch.as_tensor(bias.reshape(-1)))
        self.orderings_ = orderings
        return MAF(flows, self.batch_norm, base, family)

    def _family(self):
        return FlowOutput()

    def _after_training(self, module, Z, weights) -> None:
        # Batch norm scores with the training data's statistics under the final
        # weights, not with running averages that lag behind them.
        device = next(module.parameters()).device
        module.set_statistics(
            as_float32_tensor(Z, device),
            torch.as_tensor(weights, dtype=torch.float32, device=device),
        )

    def _batch_log_prob(self, module, family, x, k, weights, generator):
        # Batch normalization's training moments are weighted like the loss.
        return module(x, k, weights=weights)

    def _block_log_likelihood(self, module, x):
        return module(x, dtype=torch.float64).sum(dim=1)

    def _draw(self, module, n_samples, rng, device):
        generator = self._torch_generator(rng)
        shape = (n_samples, module.n_features)
        if module.base is None:
            noise = torch.randn(shape, generator=generator)
        else:
            noise = module.base_family.noise(shape, generator)
        return module.sample(noise.to(device))
