"""Synthetic mixtures of experts of other response families: counts, positive responses, outliers.

The gate is the one of :func:`~skmoe.datasets.make_gated_regression`: a
softmax of well-separated directions with balanced regions, from which each
sample's expert is drawn. The experts differ by family:

* :func:`make_count_regression`: Poisson counts with a log-linear rate per
  expert (what ``likelihood="poisson"`` fits);
* :func:`make_positive_regression`: Gamma responses with a log-linear mean
  and a shape per expert (``likelihood="gamma"``);
* :func:`make_contaminated_regression`: linear experts with Gaussian noise,
  and a fraction of the targets replaced by gross outliers
  (``likelihood="student_t"``).
"""

from numbers import Real

import numpy as np
from sklearn.utils import check_random_state

from .._docstrings import DATASETS_DOC, doc_filler
from ._samples_generator import (
    _check_generator_args,
    _check_noise,
    _check_real,
    _draw_gated_sample,
    _linear_experts,
    _output,
)

_fill_doc = doc_filler(DATASETS_DOC)


def _check_per_expert(value, name, n_experts):
    """A positive number or one per expert, as an array of shape (n_experts,)."""
    arr = np.asarray(value, dtype=np.float64) if not isinstance(value, (bool, np.bool_)) else None
    if arr is None or arr.ndim > 1 or (arr.ndim == 1 and arr.shape != (n_experts,)):
        raise ValueError(
            f"{name} must be a positive number or an array of shape (n_experts,) = "
            f"({n_experts},), got {value!r}."
        )
    arr = np.broadcast_to(arr, (n_experts,)).copy()
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must contain finite values > 0, got {arr.tolist()}.")
    return arr


def _log_linear_experts(rng, n_experts, n_features):
    """Log-scale coefficients of magnitude 0.3 to 0.8; intercepts evenly spread over [0.5, 2], shuffled.

    Evenly spread intercepts keep the experts' rates apart at ``x = 0`` for
    any draw, so every region has an expert that is identifiable.
    """
    sign = rng.choice([-1.0, 1.0], size=(n_experts, n_features))
    coef = sign * rng.uniform(0.3, 0.8, size=(n_experts, n_features))
    intercept = rng.permutation(np.linspace(0.5, 2.0, n_experts) if n_experts > 1 else np.array([1.25]))
    return coef, intercept


@_fill_doc
def make_count_regression(
    n_samples=1000,
    n_features=2,
    n_experts=2,
    *,
    gate_sharpness=5.0,
    return_labels=False,
    return_params=False,
    random_state=None,
):
    """Generate counts from a mixture of Poisson log-linear experts.

    The inputs are standard normal and a softmax gate picks each sample's
    expert, as in :func:`make_gated_regression`; that expert gives the count

    ``y ~ Poisson(exp(expert_coef[label] @ x + expert_intercept[label]))``.

    Coefficients have random signs and magnitudes between 0.3 and 0.8; the
    intercepts are spread evenly over [0.5, 2] in random order (mean counts
    of about 1.6 to 7 at ``x = 0``), so the experts' rates differ clearly.

    Read more in the :ref:`User Guide <likelihoods>`.

    .. versionadded:: 0.2

    Parameters
    ----------
    %(family_sizes)s
    %(family_options)s

    Returns
    -------
    %(X)s
    y : ndarray of shape (n_samples,)
        Counts (float64 integers).
    %(labels)s
    params : dict
        Only if ``return_params=True``: ``gate_coef`` (n_experts,
        n_features), ``gate_intercept`` (n_experts,), ``gate_sharpness``,
        ``expert_coef`` (n_experts, n_features) and ``expert_intercept``
        (n_experts,), on the log scale of the rate.

    See Also
    --------
    make_positive_regression : Gamma responses.
    make_gated_regression : Gaussian responses.

    Examples
    --------
    >>> from skmoe.datasets import make_count_regression
    >>> X, y, params = make_count_regression(500, return_params=True, random_state=0)
    >>> X.shape, bool((y >= 0).all() and (y == y.round()).all())
    ((500, 2), True)
    >>> params["expert_coef"].shape
    (2, 2)
    """
    n_samples, n_features, n_experts, gate_sharpness = _check_generator_args(
        n_samples, n_features, n_experts, gate_sharpness,
        return_labels=return_labels, return_params=return_params,
    )
    rng = check_random_state(random_state)

    X, labels, log_rate, params = _draw_gated_sample(
        rng, n_samples, n_features, n_experts, gate_sharpness, _log_linear_experts
    )
    y = rng.poisson(np.exp(log_rate)).astype(np.float64)
    return _output(X, y, labels, params, return_labels, return_params)


@_fill_doc
def make_positive_regression(
    n_samples=1000,
    n_features=2,
    n_experts=2,
    *,
    shape=5.0,
    gate_sharpness=5.0,
    return_labels=False,
    return_params=False,
    random_state=None,
):
    """Generate positive responses from a mixture of Gamma log-linear experts.

    As :func:`make_count_regression`, with the response of expert ``k``

    ``y ~ Gamma(shape_k, scale = mu / shape_k)``, ``mu = exp(expert_coef[k] @ x
    + expert_intercept[k])``:

    mean ``mu`` and coefficient of variation ``1 / sqrt(shape_k)``.

    Read more in the :ref:`User Guide <likelihoods>`.

    .. versionadded:: 0.2

    Parameters
    ----------
    %(family_sizes)s
    shape : float or array-like of shape (n_experts,), default=5.0
        Gamma shape of every expert, or one per expert; positive.
    %(family_options)s

    Returns
    -------
    %(X)s
    y : ndarray of shape (n_samples,)
        Positive responses.
    %(labels)s
    params : dict
        Only if ``return_params=True``: the keys of
        :func:`make_count_regression` (the mean on the log scale) and
        ``shape`` (n_experts,).

    See Also
    --------
    make_count_regression : Poisson counts.

    Examples
    --------
    >>> from skmoe.datasets import make_positive_regression
    >>> X, y = make_positive_regression(500, shape=[2.0, 10.0], random_state=0)
    >>> bool((y > 0).all())
    True
    """
    n_samples, n_features, n_experts, gate_sharpness = _check_generator_args(
        n_samples, n_features, n_experts, gate_sharpness,
        return_labels=return_labels, return_params=return_params,
    )
    shape = _check_per_expert(shape, "shape", n_experts)
    rng = check_random_state(random_state)

    X, labels, log_mean, params = _draw_gated_sample(
        rng, n_samples, n_features, n_experts, gate_sharpness, _log_linear_experts
    )
    y = rng.gamma(shape[labels], np.exp(log_mean) / shape[labels])
    # A Gamma draw can underflow to 0 for tiny shapes: keep the support y > 0.
    y = np.maximum(y, np.finfo(np.float64).tiny)
    params["shape"] = shape
    return _output(X, y, labels, params, return_labels, return_params)


@_fill_doc
def make_contaminated_regression(
    n_samples=1000,
    n_features=2,
    n_experts=2,
    *,
    noise=0.1,
    outlier_fraction=0.05,
    outlier_scale=10.0,
    gate_sharpness=5.0,
    return_labels=False,
    return_params=False,
    random_state=None,
):
    """Generate a gated linear regression with a fraction of gross outliers in ``y``.

    The clean data follow :func:`make_gated_regression` (standard normal
    inputs, a softmax gate, linear experts with coefficients of magnitude 1
    to 3 and Gaussian noise). Then a random ``outlier_fraction`` of the
    samples get a gross error: ``outlier_scale`` times the standard
    deviation of the clean ``y``, times a standard normal draw, is added to
    their target.

    Read more in the :ref:`User Guide <likelihoods>`.

    .. versionadded:: 0.2

    Parameters
    ----------
    %(family_sizes)s
    noise : float or array-like of shape (n_experts,), default=0.1
        Standard deviation of the Gaussian noise of the clean samples.
    outlier_fraction : float in [0, 1), default=0.05
        Fraction of samples with a gross error (rounded to a count).
    outlier_scale : float, default=10.0
        Size of the gross errors, in standard deviations of the clean ``y``.
    %(family_options)s

    Returns
    -------
    %(X)s
    y : ndarray of shape (n_samples,)
        Targets, outliers included.
    %(labels)s
    params : dict
        Only if ``return_params=True``: the keys of
        :func:`make_gated_regression`'s ``params`` and ``outliers``, a
        boolean mask of shape (n_samples,) of the contaminated samples
        (which keep the label of the expert that made their clean target).

    See Also
    --------
    make_gated_regression : The same data without outliers.

    Examples
    --------
    >>> from skmoe.datasets import make_contaminated_regression
    >>> X, y, params = make_contaminated_regression(1000, return_params=True, random_state=0)
    >>> int(params["outliers"].sum())
    50
    """
    n_samples, n_features, n_experts, gate_sharpness = _check_generator_args(
        n_samples, n_features, n_experts, gate_sharpness,
        return_labels=return_labels, return_params=return_params,
    )
    noise_std = _check_noise(noise, n_experts)
    if isinstance(outlier_fraction, (bool, np.bool_)) or not isinstance(outlier_fraction, Real) or not (
        0 <= outlier_fraction < 1
    ):
        raise ValueError(f"outlier_fraction must be a number in [0, 1), got {outlier_fraction!r}.")
    outlier_scale = _check_real(outlier_scale, "outlier_scale", positive=False)
    rng = check_random_state(random_state)

    X, labels, linear, params = _draw_gated_sample(
        rng, n_samples, n_features, n_experts, gate_sharpness, _linear_experts
    )
    y = linear + noise_std[labels] * rng.standard_normal(n_samples)
    n_outliers = round(outlier_fraction * n_samples)
    outliers = np.zeros(n_samples, dtype=bool)
    outliers[rng.choice(n_samples, size=n_outliers, replace=False)] = True
    y[outliers] += outlier_scale * y.std() * rng.standard_normal(n_outliers)
    params.update(noise_std=noise_std, outliers=outliers)
    return _output(X, y, labels, params, return_labels, return_params)
