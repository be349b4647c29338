"""HTML diagram of a mixture of experts: its experts side by side, then the gate.

scikit-learn draws an estimator in a notebook from ``_sk_visual_block_``
when the estimator defines it (the stacking estimators do: their base
estimators in parallel, then the final estimator). :class:`_MixtureReprMixin`
does the same for a mixture of experts, and points the diagram's "?" link at
skmoe's API reference instead of scikit-learn's.
"""

from .utils._compat import _VisualBlock

# Root of the published documentation; the API pages are autosummary's
# ``generated/<module>.<name>.html`` (docs/api.rst, docs/conf.py).
DOCS_URL = "https://skmoe.readthedocs.io/en/{version}/"


def _docs_version():
    """``latest`` for a development version, ``stable`` for a release."""
    from . import __version__  # here: skmoe/__init__.py sets it after importing us

    return "latest" if "dev" in __version__ else "stable"


def _expert_items(expert):
    """``(names, estimators)`` of an ``expert`` list.

    Each item is an estimator (named ``expert k``) or a ``(name, estimator)``
    pair, as the ``estimators`` of :class:`~sklearn.ensemble.VotingRegressor`.
    """
    names, estimators = [], []
    for k, item in enumerate(expert):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            name, est = item
        else:
            name, est = f"expert {k}", item
        names.append(name)
        estimators.append(est)
    return names, estimators


class _DocLinkMixin:
    """Point the "?" link of an estimator's HTML diagram at skmoe's API pages.

    scikit-learn links an estimator whose top-level module is
    ``_doc_link_module`` to ``_doc_link_template`` formatted with its public
    module and class name; ours is autosummary's page in skmoe's docs. Put it
    left of :class:`~sklearn.base.BaseEstimator` in the bases (the gates'
    ``BaseGate`` can use it too).
    """

    _doc_link_module = "skmoe"

    @property
    def _doc_link_template(self):
        # An instance may set its own (as scikit-learn allows); else our docs.
        custom = self.__dict__.get("_skmoe_doc_link_template")
        if custom is not None:
            return custom
        return (
            DOCS_URL.format(version=_docs_version())
            + "generated/{estimator_module}.{estimator_name}.html"
        )

    @_doc_link_template.setter
    def _doc_link_template(self, value):
        self.__dict__["_skmoe_doc_link_template"] = value


class _MixtureReprMixin(_DocLinkMixin):
    """HTML diagram and documentation link of the mixture-of-experts estimators.

    The diagram shows the experts in parallel (each one of a list given as
    ``expert``, named by its pair when the list holds ``(name, estimator)``
    pairs; the single expert given, or the default expert when
    ``expert=None``, labelled with ``n_experts``), then the gate. Its links
    point at skmoe's API reference.

    Placed left of :class:`~sklearn.base.BaseEstimator` in the bases, so its
    ``_doc_link_*`` attributes take precedence.
    """

    def _default_expert_for_repr(self):
        """The expert ``expert=None`` stands for, as fit resolves it."""
        make_likelihood = getattr(self, "_make_likelihood", None)
        if callable(make_likelihood):
            try:
                return make_likelihood().default_expert()
            except (AttributeError, TypeError, ValueError):
                pass  # an unusual likelihood: fall back on the task's default
        default = getattr(self, "_default_expert", None)
        if callable(default):
            return default()
        from sklearn.base import is_classifier
        from sklearn.linear_model import LinearRegression, LogisticRegression

        return LogisticRegression() if is_classifier(self) else LinearRegression()

    def _sk_visual_block_(self):
        expert = self.expert
        if isinstance(expert, (list, tuple)):
            names, experts = _expert_items(expert)
        else:
            experts = [self._default_expert_for_repr() if expert is None else expert]
            names = [f"expert (n_experts={self.n_experts})"]
        experts_block = _VisualBlock("parallel", experts, names=names, dash_wrapped=False)
        # The gate sits in a parallel block of one, so the diagram labels it
        # "gate" (as the stacking estimators label their final_estimator).
        gate_block = _VisualBlock("parallel", [self.gate], names=["gate"], dash_wrapped=False)
        return _VisualBlock("serial", (experts_block, gate_block), dash_wrapped=False)
