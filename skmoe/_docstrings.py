"""Parameter descriptions shared by both estimators, written once (numpydoc)."""

SHARED_DOC = {
    "n_experts": """n_experts : int, default=4
        Number of experts (regions of the input space).""",
    "gate": """gate : {"linear", "mlp"} or gate object, default="linear"
        Gating network. ``"linear"``: softmax (multinomial logistic) gate;
        ``"mlp"``: a one-hidden-layer network with a softmax output. A gate
        object must follow the protocol of :class:`skmoe.gates.BaseGate`
        (``fit(X, resp, sample_weight)``, ``predict_log_proba(X)``); it is
        cloned and keeps its own settings (``gate_alpha`` then does not apply).""",
    "gate_alpha": """gate_alpha : float, default=1e-6
        L2 penalty of the gate's weights on internally standardised inputs
        (so the fit does not depend on the units of ``X``), against the mean
        log-likelihood; intercepts are not penalised. Small on purpose: it
        only keeps the gate finite when regions are separable (the softmax
        is then otherwise unbounded), and moves the maximum-likelihood fit by
        less than 0.1 in total log-likelihood on the motorcycle data (flexmix
        fits the same model unpenalised). With the penalty, the gate is
        identified (softmax is invariant to adding one vector to every
        expert's weights; the penalty picks the minimum-norm one). The
        penalty is part of the EM objective (``objective_``).""",
    "init": """init : {"kmeans", "random", "tree", "gmm"}, clusterer or array-like, default="kmeans"
        First partition. ``"kmeans"``: weighted k-means on the standardised
        inputs (for the regressor on ``[X, y]``, so that regimes of the
        response separate). ``"random"``: random soft responsibilities from a
        random softmax gate. ``"tree"``: leaves of a decision tree with
        ``n_experts`` leaves. ``"gmm"``: the posterior of a full-covariance
        Gaussian mixture fitted with the sample weights to the same
        standardised data as k-means. A clusterer with ``fit_predict`` (e.g.
        ``AgglomerativeClustering(4)``) is cloned and run on the same
        standardised data and must find ``n_experts`` clusters. An array of
        labels ``(n_samples,)`` in ``[0, n_experts)`` or of responsibilities
        ``(n_samples, n_experts)`` encodes domain knowledge; an expert they
        leave empty is re-seeded like any starved expert, with a warning.""",
    "pooling": """pooling : {"weighted", "argmax"}, default="weighted"
        How predictions are pooled: the gate-weighted sum of the experts, or
        the single expert with the largest gate output. Training is the same
        either way.""",
    "top_k": """top_k : int, default=None
        Keep only the ``top_k`` largest gate outputs of each sample,
        renormalised (sparse gating), in training and prediction. Experts
        then fit only the samples routed to them. ``None`` keeps all.""",
    "gate_features": """gate_features : array-like of int, str or bool, default=None
        Columns of ``X`` the gate routes on (flexmix's concomitant
        variables): indices, names (``X`` a DataFrame) or a boolean mask.
        ``None`` means every column. An empty selection (``[]``) gives a gate
        of intercepts only: constant mixing proportions, the classic mixture
        of regressions.""",
    "expert_features": """expert_features : array-like of int, str or bool, default=None
        Columns of ``X`` the experts model, as ``gate_features``; ``None``
        means every column. Must not be empty.""",
    "min_prior": """min_prior : float in (0, 1), default=None
        Prune experts: after the gate's M-step, experts whose mean gate
        probability (sample-weighted) is below ``min_prior`` are removed at
        once (flexmix's ``minprior``). ``None`` keeps them; starved experts
        are still re-seeded or removed.""",
    "algorithm": """algorithm : {"em", "cem", "sem"}, default="em"
        ``"em"``: soft EM. ``"cem"``: classification EM, each sample wholly
        to its most responsible expert (maximises the complete-data
        likelihood, not the likelihood). ``"sem"``: stochastic EM, one
        expert drawn per sample from its responsibilities. See "Routing and
        EM variants" in the user guide.""",
    "routing": """routing : {"token_choice", "expert_choice"}, default="token_choice"
        ``"token_choice"``: each sample picks its experts (all, or
        ``top_k``). ``"expert_choice"``: each expert takes the samples it is
        most responsible for, up to its capacity; a sample no expert picked
        goes to its most responsible expert.""",
    "capacity_factor": """capacity_factor : float >= 1, default=None
        With ``top_k``, ``"cem"``, ``"sem"`` or expert choice: no expert's
        share of the M-step's weight exceeds ``capacity_factor * k /
        n_experts`` (``k`` experts per sample); overflow moves to the
        sample's next choice.""",
    "balance": """balance : None, "uniform" or array-like of shape (n_experts,), default=None
        Balanced responsibilities: the posterior projected onto expert
        shares equal to the targets (``"uniform"``: ``1 / n_experts``) by
        Sinkhorn iterations, in training only.""",
    "gate_noise": """gate_noise : float >= 0, default=0.0
        Standard deviation of Gaussian noise added to the gate logits in the
        training E-steps (noisy gating), seeded by ``random_state``.""",
    "max_iter": """max_iter : int, default=100
        Maximum number of EM iterations per initialisation. ``0`` only
        initialises (one M-step from the initial partition).""",
    "tol": """tol : float, default=1e-4
        EM stops when the objective's change is non-negative and at most
        ``tol * (|objective| + 0.1)`` (flexmix's relative rule, on the mean
        per-sample objective), never on a decrease, and not before three
        iterations.""",
    "n_init": """n_init : int, default=1
        Number of initialisations (restarts); the best log-likelihood is kept.""",
    "backend": """backend : {"numpy", "torch"}, default="numpy"
        Where the gate trains: NumPy/SciPy, or PyTorch (optional dependency,
        useful for large MLP gates on a GPU).""",
    "device": """device : str, default=None
        PyTorch device for ``backend="torch"`` (``"cpu"``, ``"cuda"``);
        ``None`` picks CUDA when present.""",
    "n_jobs": """n_jobs : int, default=None
        Number of experts fitted in parallel in each M-step, through joblib
        (:class:`sklearn.utils.parallel.Parallel`, so a
        :func:`joblib.parallel_backend` context chooses the backend).
        ``None`` and ``1`` fit the experts one after the other in the calling
        process; ``-1`` uses all processors. The batched linear fast path
        ignores it and uses BLAS threads instead.""",
    "random_state": """random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, every restart, the experts' own
        ``random_state`` and the gate. Pass an int for reproducible fits.""",
    "verbose": """verbose : int, default=0
        1: one line per initialisation; 2: also one line per EM iteration
        with the log-likelihood and its time.""",
    "warm_start": """warm_start : bool, default=False
        Continue from the previous fit's experts and gate (``n_init`` is then
        ignored), e.g. to step EM one iteration at a time with
        ``max_iter=1``.""",
    "fitted_attributes": """gate_ : gate object
        The fitted gating network. The experts are numbered by a stable rule
        (label switching): for the regressor by ascending weighted mean of
        their predictions on the training data, for the classifier by
        descending ``expert_share_``; a list of experts keeps its order (see
        :func:`skmoe.inference.order_experts`).
    n_experts_ : int
        Number of experts after training (lower than ``n_experts`` only if an
        expert was removed after repeatedly losing all responsibility).
    expert_share_ : ndarray of shape (`n_experts_`,)
        Weighted mean responsibility of each expert on the training data;
        an expert with a tiny share covers almost no samples.
    expert_load_ : ndarray of shape (`n_experts_`,)
        Share of the training weight that each expert's last M-step was
        fitted on (rows with non-zero weight): 1 for every expert under
        soft EM (less where responsibilities underflow to zero), summing to
        ``top_k`` under top-k routing.
    n_iter_ : int
        EM iterations of the best initialisation.
    converged_ : bool
        Whether the best initialisation converged.
    log_likelihood_ : float
        Sample-weighted mean log-likelihood of the training data under the
        fitted mixture (the gate with ``top_k`` if set, never argmax
        pooling): what ``log_prob(X, y)`` averages with
        ``pooling="weighted"``, and what :meth:`bic` uses.
    log_likelihood_curve_ : ndarray of shape (`n_iter_` + 1,)
        The mean log-likelihood after the initial M-step and after each
        iteration, for the best initialisation.
    objective_ : float
        The objective EM maximises: ``log_likelihood_`` minus the gate's
        penalty (``gate_alpha``).
    objective_curve_ : ndarray of shape (`n_iter_` + 1,)
        The objective after the initial M-step and after each iteration;
        EM stops on its relative change.
    log_likelihood_curves_ : list of ndarray
        The curve of every initialisation, in order.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit; only when ``X`` has string
        feature names.""",
}


def fill_doc(obj):
    """Substitute the shared parameter descriptions into ``obj.__doc__``.

    Parameters
    ----------
    obj : type or callable
        Object whose docstring holds ``%(name)s`` placeholders.

    Returns
    -------
    obj : type or callable
        The same object, docstring filled.
    """
    if obj.__doc__:
        obj.__doc__ = obj.__doc__ % SHARED_DOC
    return obj
