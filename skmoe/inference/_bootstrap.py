"""Parametric bootstrap test of the number of experts (mixtools' ``boot.comp``)."""

import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import validate_data

from .._solvers import GenericSolver
from ._model import select_columns, total_log_likelihood
from ._utils import fill_doc, import_pandas

_SEED_MAX = np.iinfo(np.int32).max


class BootstrapResult:
    """Result of :func:`bootstrap_n_experts`.

    One entry per test of ``k`` against ``k + 1`` experts, in the order
    tested; :meth:`to_frame` gives them as a table.

    Parameters
    ----------
    n_experts : ndarray of int
        The numbers of experts ``k`` tested (``k`` against ``k + 1``), in
        the order tested.
    statistic : ndarray of float
        Observed likelihood-ratio statistic ``2 (log L_{k+1} - log L_k)``
        per test.
    bootstrap_statistics : list of ndarray
        The statistics of the bootstrap replicates, per test.
    p_value : ndarray of float
        ``(1 + #{replicates >= observed}) / (n_bootstrap + 1)`` per test.
    n_experts_selected : int
        The first ``k`` whose test does not reject at ``significance`` (the
        last ``k + 1`` tested when every test rejects).
    significance : float
        Level of the sequential tests.
    n_warned : ndarray of int
        Per test, the replicates whose fits warned (not converged, experts
        re-seeded or removed).

    Attributes
    ----------
    n_experts, statistic, bootstrap_statistics, p_value, n_experts_selected, significance, n_warned
        As given.

    See Also
    --------
    bootstrap_n_experts : Computes it.
    LikelihoodRatioResult : The chi-squared test between nested fits with the
        same number of experts.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.inference import BootstrapResult
    >>> result = BootstrapResult([1, 2], [50.0, 1.0], [np.zeros(9), np.ones(9) * 2],
    ...                          [0.1, 0.9], 2, 0.05, [0, 0])
    >>> result.n_experts_selected
    2
    """

    def __init__(self, n_experts, statistic, bootstrap_statistics, p_value, n_experts_selected,
                 significance, n_warned):
        self.n_experts = np.asarray(n_experts, dtype=int)
        self.statistic = np.asarray(statistic, dtype=np.float64)
        self.bootstrap_statistics = [np.asarray(s, dtype=np.float64) for s in bootstrap_statistics]
        self.p_value = np.asarray(p_value, dtype=np.float64)
        self.n_experts_selected = int(n_experts_selected)
        self.significance = significance
        self.n_warned = np.asarray(n_warned, dtype=int)

    def to_frame(self):
        """The tests as a pandas DataFrame, one row per ``k``.

        Returns
        -------
        frame : pandas.DataFrame
            Columns ``statistic``, ``p_value``, ``n_bootstrap``, ``n_warned``,
            indexed by ``n_experts`` (the null hypothesis's ``k``).

        Raises
        ------
        ImportError
            If pandas is not installed.
        """
        pd = import_pandas("BootstrapResult.to_frame requires pandas (`pip install pandas`).")
        return pd.DataFrame(
            {
                "statistic": self.statistic,
                "p_value": self.p_value,
                "n_bootstrap": [s.size for s in self.bootstrap_statistics],
                "n_warned": self.n_warned,
            },
            index=pd.Index(self.n_experts, name="n_experts"),
        )

    def __repr__(self):
        lines = [f"Parametric bootstrap of the number of experts (level {self.significance:g}):"]
        for k, stat, p in zip(self.n_experts, self.statistic, self.p_value):
            lines.append(f"  {k} vs {k + 1} experts: LR statistic {stat:.4g}, p-value {p:.4g}")
        lines.append(f"Selected: {self.n_experts_selected} expert(s).")
        return "\n".join(lines)


def _fit(estimator, n_experts, X, y, seed):
    model = clone(estimator).set_params(n_experts=n_experts, random_state=seed)
    return model.fit(X, y)


def _simulate(model, X, rng):
    """One draw of ``y`` from a fitted mixture at the inputs ``X`` (an expert per row from the gate)."""
    Xv = validate_data(model, X, reset=False, dtype=[np.float64, np.float32])
    likelihood = model.likelihood_
    gate = model.predict_gate(X)
    cols = select_columns(model, "expert_features", Xv.shape[1])
    outputs_T = likelihood.expert_outputs(model.experts_, Xv[:, cols], None, GenericSolver)
    cumulative = np.cumsum(gate, axis=1)
    u = rng.uniform(size=(gate.shape[0], 1)) * cumulative[:, -1:]
    expert = np.minimum((u > cumulative).sum(axis=1), gate.shape[1] - 1)
    draws_T = likelihood.sample(outputs_T, likelihood.params_, rng)
    return draws_T[expert, np.arange(gate.shape[0])]


def _replicate(estimator, null, k, X, seeds):
    """LR statistic of ``k`` vs ``k + 1`` experts on data simulated from ``null``; whether a fit warned."""
    rng = np.random.RandomState(seeds[0])
    y = _simulate(null, X, rng)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        small = _fit(estimator, k, X, y, seeds[1])
        large = _fit(estimator, k + 1, X, y, seeds[2])
    statistic = 2.0 * (total_log_likelihood(large, X, y) - total_log_likelihood(small, X, y))
    return statistic, bool(caught)


@fill_doc
def bootstrap_n_experts(estimator, X, y, *, n_experts=(1, 2, 3), n_bootstrap=100,
                        significance=0.05, n_jobs=None, random_state=None, verbose=0):
    """Parametric bootstrap test of ``k`` against ``k + 1`` experts, as mixtools' ``boot.comp``.

    For each ``k`` of ``n_experts`` in turn: fit ``k`` and ``k + 1`` experts
    to the data and take the likelihood-ratio statistic
    ``2 (log L_{k+1} - log L_k)``; simulate ``n_bootstrap`` targets from the
    fitted ``k``-expert model at the observed inputs (an expert drawn from
    the gate per row, then ``y`` from the likelihood's sampler), refit ``k``
    and ``k + 1`` experts to each and collect their statistics; the p-value
    is the share of replicates at least as large as the observed statistic.
    The tests stop at the first ``k`` not rejected at ``significance``,
    which is the number of experts selected.

    The chi-squared reference of :func:`likelihood_ratio_test` is invalid
    here (the smaller model is on the boundary of the larger one); the
    bootstrap replaces it by the statistic's distribution under the fitted
    null model.

    Read more in the :ref:`User Guide <inference>`.

    Parameters
    ----------
    estimator : estimator
        An unfitted mixture of experts (e.g.
        :class:`~skmoe.MixtureOfExpertsRegressor`), cloned for every fit with
        ``n_experts`` and ``random_state`` set; its likelihood must have a
        sampler (:meth:`~skmoe.likelihoods.BaseLikelihood.sample`). Use
        ``gate_alpha=0`` for likelihood-ratio statistics of
        maximum-likelihood fits, and ``n_init > 1`` so that the larger
        model's fit rarely falls below the smaller one's.
    X : array-like of shape (n_samples, n_features)
        Inputs, kept fixed in the replicates.
    y : array-like of shape (n_samples,)
        Targets.
    n_experts : sequence of int, default=(1, 2, 3)
        The numbers of experts ``k`` to test against ``k + 1``, in order.
    n_bootstrap : int, default=100
        Replicates per test.
    significance : float, default=0.05
        Level of each test of the sequence.
    n_jobs : int, default=None
        Replicates fitted in parallel (:class:`joblib.Parallel`); None means
        1 unless in a :func:`joblib.parallel_backend` context.
    random_state : int, RandomState instance or None, default=None
        Seeds every simulation and fit; the result does not depend on
        ``n_jobs``.
    verbose : int, default=0
        Progress: 1 prints a line per test, higher values also joblib's
        progress of the replicates.

    Returns
    -------
    result : BootstrapResult
        Observed statistics, bootstrap distributions, p-values and the
        number of experts selected.

    See Also
    --------
    likelihood_ratio_test : The test for nested models with the same number of experts.

    References
    ----------
    .. [1] G. J. McLachlan, "On bootstrapping the likelihood ratio test
       statistic for the number of components in a normal mixture", JRSS C
       36(3), 1987.
    .. [2] T. Benaglia, D. Chauveau, D. R. Hunter and D. S. Young, "mixtools:
       an R package for analyzing finite mixture models", Journal of
       Statistical Software 32(6), 2009.

    Examples
    --------
    %(example_fit)s
    >>> from skmoe.inference import bootstrap_n_experts
    >>> result = bootstrap_n_experts(moe, X, y, n_experts=(1,), n_bootstrap=9, random_state=0)
    >>> float(result.p_value[0])
    0.1
    """
    n_experts = [int(k) for k in np.atleast_1d(n_experts)]
    if not n_experts or min(n_experts) < 1:
        raise ValueError(f"n_experts must be positive integers; got {n_experts!r}.")
    if int(n_bootstrap) < 1:
        raise ValueError(f"n_bootstrap must be a positive integer; got {n_bootstrap!r}.")
    if not 0 < significance < 1:
        raise ValueError(f"significance must be in (0, 1); got {significance!r}.")
    rng = check_random_state(random_state)
    fits = {}

    def fitted(k):
        if k not in fits:
            fits[k] = _fit(estimator, k, X, y, int(rng.randint(_SEED_MAX)))
        return fits[k]

    tested, observed, replicates, p_values, warned = [], [], [], [], []
    selected = None
    for k in n_experts:
        start = time.time()
        null, alternative = fitted(k), fitted(k + 1)
        statistic = 2.0 * (total_log_likelihood(alternative, X, y) - total_log_likelihood(null, X, y))
        seeds = rng.randint(_SEED_MAX, size=(int(n_bootstrap), 3))
        results = Parallel(n_jobs=n_jobs, verbose=max(0, 10 * (verbose - 1)))(
            delayed(_replicate)(estimator, null, k, X, s) for s in seeds
        )
        stats = np.array([r[0] for r in results])
        p_value = (1.0 + np.sum(stats >= statistic)) / (stats.size + 1.0)
        tested.append(k)
        observed.append(statistic)
        replicates.append(stats)
        p_values.append(p_value)
        warned.append(sum(r[1] for r in results))
        if verbose:
            print(
                f"{k} vs {k + 1} experts: LR statistic {statistic:.4g}, p-value {p_value:.4g} "
                f"({stats.size} replicates, {warned[-1]} warned, {time.time() - start:.1f}s)"
            )
        if p_value > significance:
            selected = k
            break
    if selected is None:
        selected = tested[-1] + 1
    return BootstrapResult(tested, observed, replicates, p_values, selected, significance, warned)
