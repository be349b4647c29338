"""Standard errors from the observed information, and the table that reports them."""

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from ._model import MixtureModel
from ._utils import fill_doc, import_pandas

_COLUMNS = ("estimate", "std_err", "z", "p_value", "ci_low", "ci_high")


@fill_doc
@dataclass(eq=False, repr=False)
class ParameterTable:
    """Estimates, standard errors, Wald tests and confidence intervals of a fitted mixture.

    Returned by :func:`standard_errors`; one entry per parameter, in the
    order: for each expert its coefficients (``"(intercept)"`` first) and its
    likelihood parameters (``"sigma"`` for the Gaussian), then for each expert
    but the reference the gate's log-odds of that expert against the
    reference (component ``"gate k"``).

    Read more in the :ref:`User Guide <inference>`.

    Parameters
    ----------
    component : list of str
        ``"expert k"`` or ``"gate k"`` per parameter.
    term : list of str
        Term per parameter: ``"(intercept)"``, a feature name, or a
        likelihood parameter (``"sigma"``).
    estimate, std_err, z, p_value, ci_low, ci_high : ndarray of shape (n_parameters,)
        The table's columns.
    covariance : ndarray of shape (n_parameters, n_parameters)
        Inverse observed information, with the likelihood parameters on the
        log scale (``log sigma``).
    confidence_level : float
        Level of the intervals.
    reference : int
        Reference expert of the gate.
    log_likelihood : float
        Total (weighted) log-likelihood at the estimates.
    n_samples : float
        Total weight of the samples (their number without weights).
    maximum_likelihood : bool
        False when the fit is penalised (or otherwise not a maximum-likelihood
        fit): the errors are then not maximum-likelihood errors.
    note : str
        Why the errors are not maximum-likelihood errors; empty otherwise.

    Attributes
    ----------
    component, term, estimate, std_err, z, p_value, ci_low, ci_high, covariance
        As given.
    confidence_level, reference, log_likelihood, n_samples, maximum_likelihood, note
        As given.

    See Also
    --------
    standard_errors : Computes this table.

    Examples
    --------
    %(example_fit)s
    >>> from skmoe.inference import standard_errors
    >>> table = standard_errors(moe, X, y)
    >>> len(table), table.component[:3], table.term[:3]
    (8, ['expert 0', 'expert 0', 'expert 0'], ['(intercept)', 'x0', 'sigma'])
    >>> table.to_frame().loc["gate 1"].round(2)  # doctest: +NORMALIZE_WHITESPACE
                 estimate  std_err      z  p_value  ci_low  ci_high
    term
    (intercept)     -0.03     0.16  -0.20     0.84   -0.34     0.28
    x0               1.76     0.16  11.31     0.00    1.45     2.06
    """

    component: list
    term: list
    estimate: np.ndarray
    std_err: np.ndarray
    z: np.ndarray
    p_value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    covariance: np.ndarray
    confidence_level: float
    reference: int
    log_likelihood: float
    n_samples: float
    maximum_likelihood: bool
    note: str

    def __post_init__(self):
        self.component = list(self.component)
        self.term = list(self.term)

    def __len__(self):
        return len(self.term)

    def to_frame(self):
        """The table as a pandas DataFrame indexed by ``(component, term)``.

        Returns
        -------
        frame : pandas.DataFrame
            Columns ``estimate``, ``std_err``, ``z``, ``p_value``, ``ci_low``,
            ``ci_high``.

        Raises
        ------
        ImportError
            If pandas is not installed.
        """
        pd = import_pandas(
            "ParameterTable.to_frame requires pandas; install it with `pip install pandas` "
            "(the table's columns are also attributes: estimate, std_err, ...)."
        )
        index = pd.MultiIndex.from_arrays([self.component, self.term], names=["component", "term"])
        return pd.DataFrame({c: getattr(self, c) for c in _COLUMNS}, index=index)

    def summary(self):
        """The table as text, one block per expert and per gate contrast.

        Returns
        -------
        text : str
            As flexmix's ``summary(refit(fit))`` prints it: estimates,
            standard errors, z values and p-values, with the intervals.
        """
        level = f"{100 * self.confidence_level:g}%"
        gate = any(c.startswith("gate") for c in self.component)
        head = (
            f"Standard errors from the observed information (n={self.n_samples:g}, "
            f"log-likelihood {self.log_likelihood:.4f}); "
            + (f"gate: log-odds against expert {self.reference}; " if gate else "")
            + f"{level} intervals."
        )
        lines = [head]
        if not self.maximum_likelihood:
            lines.append(f"Not maximum-likelihood errors: {self.note}.")
        width = max(len(t) for t in self.term + ["term"])
        header = f"{'':<{width}}  {'estimate':>11} {'std_err':>10} {'z':>8} {'p_value':>9} " \
                 f"{'ci_low':>11} {'ci_high':>11}"
        for name in dict.fromkeys(self.component):
            title = name.capitalize()
            if name.startswith("gate"):
                title = f"Gate: expert {name.split()[1]} vs expert {self.reference}"
            lines += ["", title, header]
            for i in (i for i, c in enumerate(self.component) if c == name):
                lines.append(
                    f"{self.term[i]:<{width}}  {self.estimate[i]:>11.5g} {self.std_err[i]:>10.4g} "
                    f"{_fmt(self.z[i], '8.3f')} {_fmt_p(self.p_value[i])} "
                    f"{self.ci_low[i]:>11.5g} {self.ci_high[i]:>11.5g}"
                )
        return "\n".join(lines)

    def __repr__(self):
        return self.summary()


def _fmt_p(p):
    return f"{'<2e-16':>9}" if p < 2e-16 else _fmt(p, "9.3g")


def _fmt(value, spec):
    width = int(spec.split(".")[0])
    return f"{'':>{width}}" if np.isnan(value) else format(value, ">" + spec)


@fill_doc
def standard_errors(model, X, y, *, sample_weight=None, reference=0, confidence_level=0.95):
    """Standard errors of a fitted mixture of linear experts, from the observed information.

    The observed information is minus the Hessian of the observed-data
    log-likelihood ``sum_i w_i log sum_k g_k(x_i) p_k(y_i | x_i)`` at the
    fitted parameters, computed from analytic per-sample derivatives
    (Louis's identity), as flexmix's ``refit()`` reports it. Its inverse is
    the covariance of the estimates; the table gives Wald z-tests and
    intervals.

    The softmax gate is only identified up to a common shift: its parameters
    are reported against a reference expert (flexmix's choice, the first),
    as the log-odds of every other expert against it. The likelihood's own
    parameters (the noise standard deviation ``sigma`` of the Gaussian) are
    handled on the log scale: their row gives the estimate, the delta-method
    standard error and the interval ``exp(log sigma +- z se)``, and no z-test
    (zero is not a value of interest).

    Read more in the :ref:`User Guide <inference>`.

    Parameters
    ----------
    model : MixtureOfExpertsRegressor
        Fitted with linear experts (``LinearRegression``; ``Ridge``,
        ``PoissonRegressor`` and ``GammaRegressor`` with the matching
        likelihood) and the linear gate, ``top_k=None``. Order its experts
        first with :func:`order_experts` for tables that line up.
    X : array-like of shape (n_samples, n_features)
        The training inputs.
    y : array-like of shape (n_samples,)
        The training targets.
    sample_weight : array-like of shape (n_samples,), default=None
        The fit's sample weights, as frequency weights.
    reference : int, default=0
        Reference expert of the gate.
    confidence_level : float, default=0.95
        Level of the Wald intervals.

    Returns
    -------
    table : ParameterTable
        Estimates, standard errors, z values, p-values and intervals.

    Warns
    -----
    UserWarning
        If the fit is penalised (``gate_alpha > 0``, experts with a penalty)
        or otherwise not a maximum-likelihood fit: the errors are then those
        of the penalised estimates' curvature, not maximum-likelihood errors
        (the table says so); if the model did not converge; if the observed
        information is not positive definite (the errors are then NaN).

    See Also
    --------
    likelihood_ratio_test : Compare nested fits.
    bootstrap_n_experts : Test the number of experts.
    order_experts : Sort the experts before reporting.

    Notes
    -----
    The Hessian per sample is
    ``sum_k r_ik (D_ik + s_ik s_ik^T) - S_i S_i^T``: ``r_ik`` is the
    posterior of expert ``k``, ``s_ik`` and ``D_ik`` the gradient and Hessian
    of ``log g_k(x_i) + log p_k(y_i | x_i)`` and ``S_i = sum_k r_ik s_ik``
    (Louis 1982). The derivatives of ``log p_k`` come from the likelihood's
    :class:`LikelihoodDerivatives` (built in for the Gaussian, Poisson and
    Gamma likelihoods).

    References
    ----------
    .. [1] T. A. Louis, "Finding the observed information matrix when using
       the EM algorithm", JRSS B 44(2), 1982.
    .. [2] B. Grün and F. Leisch, "FlexMix version 2: finite mixtures with
       concomitant variables and varying and constant parameters", Journal
       of Statistical Software 28(4), 2008.

    Examples
    --------
    %(example_fit)s
    >>> from skmoe.inference import order_experts, standard_errors
    >>> order = order_experts(moe, X)  # expert 0 has the lower mean prediction
    >>> table = standard_errors(moe, X, y)
    >>> [round(float(b), 1) for b in table.estimate[[1, 4]]]  # the slopes
    [-2.0, 3.0]
    >>> bool(table.std_err[1] < 0.1)
    True
    """
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be in (0, 1); got {confidence_level!r}.")
    mm = MixtureModel(model, X, y, sample_weight=sample_weight, reference=reference)
    note = "; ".join(mm.reasons)
    if mm.reasons:
        warnings.warn(
            f"The fit is not a maximum-likelihood fit ({note}): the standard errors come from "
            "the curvature of the unpenalised log-likelihood at penalised estimates, not "
            "maximum-likelihood errors. Refit with gate_alpha=0 and unpenalised experts "
            "(LinearRegression) for maximum-likelihood errors.",
            UserWarning,
        )
    if not getattr(model, "converged_", True):
        warnings.warn(
            "The model did not converge: the estimates are not at a maximum of the "
            "likelihood and the errors may be off. Refit with a larger max_iter.",
            UserWarning,
        )
    _, hessian = mm.score_hessian()
    covariance = _inverse_information(-hessian)
    se_internal = np.sqrt(np.diag(covariance))
    q = norm.ppf(0.5 + confidence_level / 2)
    theta, extra = mm.theta, mm.extra
    estimate, std_err = theta.copy(), se_internal.copy()
    ci_low, ci_high = theta - q * se_internal, theta + q * se_internal
    with np.errstate(divide="ignore", invalid="ignore"):
        z = theta / se_internal
    # Log-scale likelihood parameters: natural scale, delta-method error, no z-test.
    estimate[extra] = np.exp(theta[extra])
    std_err[extra] = estimate[extra] * se_internal[extra]
    ci_low[extra], ci_high[extra] = np.exp(ci_low[extra]), np.exp(ci_high[extra])
    z[extra] = np.nan
    p_value = 2 * norm.sf(np.abs(z))
    return ParameterTable(
        mm.component, mm.term, estimate, std_err, z, p_value, ci_low, ci_high, covariance,
        confidence_level, mm.reference, mm.log_likelihood(theta), float(mm.sample_weight.sum()),
        not mm.reasons, note,
    )


def _inverse_information(information):
    """Inverse of the observed information; NaN with a warning when it is not positive definite."""
    try:
        factor = np.linalg.cholesky(information)
    except np.linalg.LinAlgError:
        warnings.warn(
            "The observed information is not positive definite: the fit is not at a local "
            "maximum of the likelihood or a parameter is not identified (an empty expert, "
            "a gate that separates the data, collinear columns). The standard errors are NaN.",
            UserWarning,
        )
        return np.full_like(information, np.nan)
    inverse = np.linalg.inv(factor)
    return inverse.T @ inverse
