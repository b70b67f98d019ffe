"""MAFDensity: a masked autoregressive flow with the scikit-learn API."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import (
    check_is_fitted,
    validate_data,
)

from ._base import (
    TRAINING_CONSTRAINTS,
    TorchDensity,
    _as_float32_tensor,
    _resolve_device,
    beyond_range,
    check_weights,
    count,
    l2_scale,
    row_blocks,
    standardization,
)
from ._families import Gaussian, MixtureOfGaussians
from ._flows import MAF, FlowOutput
from ._masks import make_degrees
from ._nn import MADE


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

    verbose : bool, default=False
        Print the loss after every epoch.

    warm_start : bool, default=False
        If True, a second :meth:`fit` continues training the fitted flow.

    device : {'auto', 'cpu', 'cuda'}, default='auto'
        Where the flow trains and scores; ``'auto'`` uses CUDA when available.

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
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during :term:`fit`, when they are all strings.

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

    def _check_fit_input(self, X, sample_weight, incremental):
        continuing = (self.warm_start or incremental) and hasattr(self, "module_")
        if continuing and self._fitted_structure != self._structure():
            changed = next(
                name
                for name, value in self._structure().items()
                if self._fitted_structure[name] != value
            )
            raise ValueError(
                f"warm_start=True continues training the fitted flow, but {changed} "
                "changed. Set warm_start=False to fit a new model."
            )
        hidden = self._hidden_sizes()
        X = validate_data(
            self,
            X,
            dtype=[np.float64, np.float32],
            ensure_min_samples=2,
            reset=not continuing,
        )
        weights, weight_exponent = check_weights(sample_weight, X)
        n_validation = self._n_validation(X.shape[0], incremental)
        device = _resolve_device(self.device)
        return X, (weights, weight_exponent), hidden, n_validation, device, continuing

    def _build(self, n_features: int, hidden, rng) -> MAF:
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

    def _fit_model(self, X, sample_weight, incremental):
        checked = self._check_fit_input(X, sample_weight, incremental)
        X, (weights, weight_exponent), hidden = checked[:3]
        n_validation, device, continuing = checked[3:]
        rng = self._fit_rng(incremental, continuing)
        X, weights, X_val, weights_val = self._split(X, weights, n_validation, rng)
        penalty_scale = l2_scale(self.alpha, weights, weight_exponent)

        if continuing:
            module = self.module_.to(device)
        else:
            self.mean_, self.scale_ = standardization(X, weights)
            module = self._build(X.shape[1], hidden, rng).to(device)
            self._reset_training_state(n_validation > 0)
        if n_validation and self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        self.module_ = module
        Z, Z_val = self._standardize(X), self._standardize(X_val)
        self._train(
            module,
            FlowOutput,
            Z,
            weights,
            Z_val,
            weights_val,
            self._torch_generator(rng),
            incremental,
            penalty_scale,
        )
        # Batch norm scores with the training data's statistics under the final
        # weights, not with running averages that lag behind them.
        module.set_statistics(
            _as_float32_tensor(Z, device),
            torch.as_tensor(weights, dtype=torch.float32, device=device),
        )
        module.eval()
        return self

    @staticmethod
    def _batch_log_prob(module, family, x, k, weights):
        # Batch normalization's training moments are weighted like the loss.
        return module(x, k, weights=weights)

    def _standardize(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    @torch.no_grad()
    def _log_likelihood(self, Z: np.ndarray) -> np.ndarray:
        module = self.module_
        module.eval()
        device = next(module.parameters()).device
        out = np.empty(Z.shape[0], dtype=np.float64)
        for start, x, n in row_blocks(Z, device):
            terms = module(x, dtype=torch.float64)[:n]
            out[start : start + n] = terms.sum(dim=1).cpu().numpy()
        return out - float(np.sum(np.log(self.scale_)))

    def score_samples(self, X):
        """Log-density of each row under the flow, in nats and the units of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to evaluate.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            ``log p(x)`` of each row.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        Z = self._standardize(X)
        # Values too extreme for the float32 network have probability zero.
        extreme = beyond_range(Z).any(axis=1)
        if not extreme.any():
            return self._log_likelihood(Z)
        out = np.full(Z.shape[0], -np.inf)
        out[~extreme] = self._log_likelihood(Z[~extreme])
        return out

    @torch.no_grad()
    def sample(self, n_samples=1, random_state=None):
        """Draw rows exactly from the fitted flow.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.

        random_state : int, RandomState instance or None, default=None
            Seeds the draw. ``None`` uses numpy's global random state.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            The drawn rows, in the units of the training data.
        """
        check_is_fitted(self)
        self._check_n_samples(n_samples)
        rng = check_random_state(random_state)
        module = self.module_
        module.eval()
        device = next(module.parameters()).device
        generator = self._torch_generator(rng)
        shape = (n_samples, module.n_features)
        if module.base is None:
            noise = torch.randn(shape, generator=generator)
        else:
            noise = module.base_family.noise(shape, generator)
        Z = module.sample(noise.to(device))
        return Z.cpu().double().numpy() * self.scale_ + self.mean_
