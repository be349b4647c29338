"""Docstring text written once and shared: numpydoc entries and the filler that inserts them.

An entry is written as it stands in a class's or function's docstring (the
name line at an indentation of four spaces, its description at eight), with
the first line's indentation left out; an entry may also be whole sections
(header and underline at four spaces). A docstring names an entry by a line
``%(name)s`` alone; :func:`doc_filler` replaces the line by the entry,
re-indented to the placeholder's indentation, so the same entry serves a
function (four spaces) and a method (eight).
"""

import re
import textwrap

# The indentation an entry is written at (see the module docstring).
_ENTRY_INDENT = " " * 4
# A placeholder: ``%(name)s`` alone on its line, after its indentation.
_PLACEHOLDER = re.compile(r"^([ \t]*)%\((\w+)\)s[ \t]*$", re.MULTILINE)


def join_entries(*entries):
    """One entry made of several, in order (a placeholder for a block of parameters)."""
    return ("\n" + _ENTRY_INDENT).join(entries)


# The Parameters section of a method that takes only ``X`` (an estimator's
# or a gate's); the start of longer ones.
_X_PARAMETERS = """Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Inputs."""

# Parameters, attributes and returned values of both estimators.
SHARED_DOC = {
    "X_parameters": _X_PARAMETERS,
    "n_experts": """n_experts : int, default=4
        Number of experts (regions of the input space).""",
    "gate": """gate : {"linear", "mlp"} or gate object, default="linear"
        Gating network. ``"linear"``: softmax (multinomial logistic) gate;
        ``"mlp"``: a one-hidden-layer network with a softmax output. A gate
        object must follow the protocol of :class:`skmoe.gates.BaseGate`
        (``fit(X, resp, sample_weight)``, ``predict_log_proba(X)``); it is
        cloned and keeps its own settings (``gate_alpha`` then does not apply).""",
    "gate_alpha": """gate_alpha : float or "auto", default="auto"
        L2 penalty of the built-in gate's weights on internally standardised
        inputs (so the fit does not depend on the units of ``X``), against
        the mean log-likelihood; intercepts are not penalised. ``"auto"``:
        1e-6 for ``gate="linear"``, 3e-3 for ``gate="mlp"``. The linear
        gate's is small on purpose: it only keeps the gate finite when
        regions are separable (the softmax is then otherwise unbounded), and
        moves the maximum-likelihood fit by less than 0.1 in total
        log-likelihood on the motorcycle data (flexmix fits the same model
        unpenalised); with it the gate is also identified (softmax is
        invariant to adding one vector to every expert's weights; the
        penalty picks the minimum-norm one). The MLP gate's regularises:
        with less, it fits the training responsibilities ever more sharply
        (held-out log-likelihood up to 4 per sample lower, and several times
        the EM iterations). The penalty is part of the EM objective
        (``objective_``).""",
    "init": """init : {"kmeans", "random", "tree", "gmm"}, clusterer or array-like, default="kmeans"
        First partition. ``"kmeans"``: weighted k-means on the standardised
        inputs (for the regressor on ``[X, y]``, so that regimes of the
        response separate). ``"random"``: random soft responsibilities from a
        random softmax gate. ``"tree"``: leaves of a decision tree with
        ``n_experts`` leaves. ``"gmm"``: the posterior of a full-covariance
        Gaussian mixture fitted with the sample weights to the same
        standardised data as k-means. A clusterer with ``fit_predict``, or ``fit``
        and ``predict`` (e.g. ``AgglomerativeClustering(4)``, dask-ml's
        ``KMeans``) is cloned and run on the same
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
        renormalised (sparse gating), in prediction and in the likelihood
        EM raises. Each expert is fitted only on the samples that picked it;
        the gate learns from the full posterior. ``None`` keeps all.""",
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
        ``None`` picks CUDA when present. On an accelerator, with linear
        experts, the Gaussian likelihood and soft EM on dense ``X``, the whole
        EM loop runs on the device (user guide, "Scaling").""",
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
# The parameters both estimators take after ``expert`` (and the regressor's
# ``likelihood``), in the order of their signatures.
SHARED_DOC["gate_to_warm_start"] = join_entries(
    *(
        SHARED_DOC[name]
        for name in (
            "gate", "gate_alpha", "init", "pooling", "top_k", "gate_features", "expert_features",
            "min_prior", "algorithm", "routing", "capacity_factor", "balance", "gate_noise",
            "max_iter", "tol", "n_init", "backend", "device", "n_jobs", "random_state", "verbose",
            "warm_start",
        )
    )
)

# Whole sections, header included, of the methods that score ``(X, y)``.
SHARED_DOC["X_y_parameters"] = _X_PARAMETERS + """
    y : array-like of shape (n_samples,)
        Targets."""
SHARED_DOC["information_criterion"] = SHARED_DOC["X_y_parameters"] + """

    Returns
    -------
    criterion : float
        The criterion; lower is better."""


# Parameters and whole sections of the gates' methods (:mod:`skmoe.gates`).
GATES_DOC = {
    "X_parameters": _X_PARAMETERS,
    "fit_sections": _X_PARAMETERS + """
    resp : array-like of shape (n_samples, n_experts)
        Soft targets, non-negative rows summing to one.
    sample_weight : array-like of shape (n_samples,), default=None
        Per-sample weights.

    Returns
    -------
    self : object
        The fitted gate.""",
    "predict_log_proba_sections": _X_PARAMETERS + """

    Returns
    -------
    log_proba : ndarray of shape (n_samples, n_experts)
        Log probability of each expert.""",
    "log_proba_T_sections": _X_PARAMETERS + """

    Returns
    -------
    log_proba_T : ndarray of shape (n_experts, n_samples)
        Log gate probabilities; each column log-sum-exps to 0.""",
    "keep": """keep : array-like of int
        Indices of the experts kept, in their new order.""",
}


# Parameters of the likelihood protocol's methods (:mod:`skmoe.likelihoods`).
LIKELIHOODS_DOC = {
    "outputs_T": """outputs_T : ndarray of shape (n_experts, n_samples)
        From :meth:`expert_outputs`.""",
    "params": """params : object or None
        The likelihood's parameters.""",
}
LIKELIHOODS_DOC["outputs_params"] = join_entries(LIKELIHOODS_DOC["outputs_T"], LIKELIHOODS_DOC["params"])
LIKELIHOODS_DOC["outputs_y_params"] = join_entries(
    LIKELIHOODS_DOC["outputs_T"],
    """y : ndarray of shape (n_samples,)
        Target.""",
    LIKELIHOODS_DOC["params"],
)


# Parameters and returned values of the synthetic data generators of
# :mod:`skmoe.datasets`.
DATASETS_DOC = {
    "n_samples": """n_samples : int, default=1000
        Number of samples.""",
    "n_features": """n_features : int, default=2
        Number of input features.""",
    "gate_sharpness": """gate_sharpness : float, default=5.0
        Positive scale of the gate logits: small values blur the regions into
        each other, large values make them almost hard.""",
    "return_labels": """return_labels : bool, default=False
        If True, also return the index of the expert that generated each
        sample, after ``y``.""",
    "return_params": """return_params : bool, default=False
        If True, also return the parameters of the generating model, last.""",
    "random_state": """random_state : int, RandomState instance or None, default=None
        Seed of every random draw. Pass an int for reproducible output.""",
    "X": """X : ndarray of shape (n_samples, n_features)
        Input samples.""",
    "labels": """labels : ndarray of shape (n_samples,)
        Only if ``return_labels=True``; the index of the expert that
        generated each sample.""",
}
DATASETS_DOC["family_sizes"] = join_entries(
    DATASETS_DOC["n_samples"],
    DATASETS_DOC["n_features"],
    """n_experts : int, default=2
        Number of regions, each with its own expert.""",
)
DATASETS_DOC["family_options"] = join_entries(
    *(DATASETS_DOC[name] for name in ("gate_sharpness", "return_labels", "return_params", "random_state"))
)

# Text shared by the displays of :mod:`skmoe.inspection`.
DISPLAYS_DOC = {
    "colors": """colors : str or list of colors, default=None
        Colour of each expert: ``None`` for the qualitative ``tab10``
        colormap (``tab20`` beyond 10 experts), the name of a matplotlib
        colormap, or a list of ``n_experts`` matplotlib colours. Every
        display has the same default, so an expert has one colour in all.""",
    "ax_figure": """ax_ : matplotlib.axes.Axes
        The axes drawn on.
    figure_ : matplotlib.figure.Figure
        The figure of ``ax_``.""",
    "estimator": """estimator : MixtureOfExpertsRegressor, MixtureOfExpertsClassifier or Pipeline
        Fitted estimator: a mixture of experts, or a
        :class:`~sklearn.pipeline.Pipeline` whose last step is one. For a
        pipeline, ``X``, the plotted features, ``fixed_values``, the grid
        and the axes are in the units of the pipeline's input; the grid
        (and the data) are passed through the steps before the mixture.""",
    "raises": """TypeError
        If ``estimator`` is neither a mixture of experts nor a pipeline
        ending in one.
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.""",
    # The start of every example that draws: a backend without a screen.
    "example_plt": """>>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt""",
    # The start of the examples that draw a fitted estimator: two experts
    # split on the sign of the first of two features.
    "example_fit": """>>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-3, 3, size=(200, 2))
    >>> y = np.abs(X[:, 0]) + 0.1 * rng.randn(200)
    >>> moe = MixtureOfExpertsRegressor(n_experts=2, n_init=2, random_state=0).fit(X, y)""",
}

# The start of the examples of :mod:`skmoe.inference`: two linear experts
# behind a logistic gate, fitted by maximum likelihood (no gate penalty).
INFERENCE_DOC = {
    "example_fit": """>>> import numpy as np
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-3, 3, (500, 1))
    >>> second = rng.uniform(size=500) < 1 / (1 + np.exp(-2 * X[:, 0]))  # a soft gate
    >>> y = np.where(second, 4 + 3 * X[:, 0], 1 - 2 * X[:, 0]) + 0.5 * rng.randn(500)
    >>> moe = MixtureOfExpertsRegressor(2, gate_alpha=0, random_state=0).fit(X, y)""",
}


def _reindent(entry, indent):
    """``entry``, written at the indentation ``_ENTRY_INDENT``, moved to ``indent``."""
    first, *rest = entry.split("\n")
    for line in rest:
        if line.strip() and not line.startswith(_ENTRY_INDENT):
            raise ValueError(f"docstring entry {first!r} is not indented by {len(_ENTRY_INDENT)}")
    rest = [line[len(_ENTRY_INDENT):] for line in rest]
    return textwrap.indent("\n".join([first, *rest]), indent)


def fill_docstring(doc, entries):
    """Replace each placeholder line of ``doc`` by its entry of ``entries``.

    Parameters
    ----------
    doc : str
        A docstring with ``%(name)s`` placeholders, each alone on its line.
    entries : dict of str to str
        The entries, by name, written as the module docstring says.

    Returns
    -------
    doc : str
        The docstring with every placeholder replaced.

    Raises
    ------
    KeyError
        If a placeholder names no entry.
    """
    return _PLACEHOLDER.sub(lambda m: _reindent(entries[m.group(2)], m.group(1)), doc)


def doc_filler(entries):
    """A decorator that fills the docstring of what it decorates from ``entries``.

    Parameters
    ----------
    entries : dict of str to str
        The entries, by name (see :func:`fill_docstring`).

    Returns
    -------
    fill : callable
        Takes a class or a function, fills its ``__doc__`` in place (for a
        class, also those of the methods and properties it defines) and
        returns it.
    """

    def fill(obj):
        if obj.__doc__:
            obj.__doc__ = fill_docstring(obj.__doc__, entries)
        if isinstance(obj, type):
            for member in vars(obj).values():
                member = getattr(member, "__func__", getattr(member, "fget", member))
                if callable(member) and member.__doc__:
                    member.__doc__ = fill_docstring(member.__doc__, entries)
        return obj

    return fill


# Fills the estimators' docstrings.
fill_doc = doc_filler(SHARED_DOC)
