"""Which experts, likelihoods, gates, routers, backends and inputs work together.

One table, :data:`SUPPORTED`, checked once at ``fit`` by
:func:`check_combination` before any work, and rendered in the user guide
by :func:`combination_table_rst`. A refused combination gets a message that
names it and the nearest combination that works.
"""

from collections import namedtuple

Combination = namedtuple(
    "Combination", ["likelihood", "solver", "gate", "backend", "router", "input"]
)
Combination.__doc__ = """One fit's choice of plug-ins, as names.

``likelihood``: the likelihood's ``name`` (``"gaussian"``, ``"poisson"``,
``"gamma"``, ``"student_t"``, ``"categorical"``; ``"custom"`` for a
user-written one);
``solver``: ``"batched_linear"`` or ``"generic"``; ``gate``: ``"linear"``,
``"mlp"`` or ``"custom"`` (a gate object); ``backend``: ``"numpy"`` or
``"torch"``; ``router``: the assignment (``"soft"``, ``"top_k"``, ``"cem"``,
``"sem"`` or ``"expert_choice"``); ``input``: ``"dense"``, ``"sparse"`` or
``"dask"`` (the Dask driver, ``skmoe._dask``, refuses the other combinations itself).
"""

# Each field but the last two is a value or a tuple of allowed values.
Row = namedtuple("Row", ["likelihood", "solver", "gate", "backend", "router", "input", "experts", "note"])

# The values each column may take in a supported row. The routing variants
# and the likelihood families are orthogonal to the experts and gates: each
# new one is added here once.
# Routers by their assignment (skmoe._routers): the modifiers (balance,
# capacity_factor, gate_noise) combine with each, as make_router checks.
ROUTERS = ("soft", "top_k", "cem", "sem", "expert_choice")
REGRESSION_LIKELIHOODS = ("gaussian", "poisson", "gamma", "student_t")
BATCHED_LIKELIHOODS = ("gaussian", "student_t")  # whose exact expert M-step is least squares
BUILTIN_GATES = ("linear", "mlp")
BACKENDS = ("numpy", "torch")
INPUTS = ("dense",)
# Sparse X (never densified) needs a gate whose forward pass is one
# sparse-dense product: the NumPy linear gate (the MLP and PyTorch gates
# would densify it), or a gate object whose tags accept sparse input.
IN_MEMORY_INPUTS = ("dense", "sparse")

SUPPORTED = (
    Row(BATCHED_LIKELIHOODS, "batched_linear", BUILTIN_GATES, BACKENDS, ROUTERS, INPUTS,
        "LinearRegression, Ridge (direct solver)",
        "weighted normal equations of all experts in one pass; exact M-step for LinearRegression"),
    Row(REGRESSION_LIKELIHOODS, "generic", BUILTIN_GATES, BACKENDS, ROUTERS, INPUTS,
        "any regressor whose fit takes sample_weight", "experts fitted one by one (n_jobs)"),
    Row(("categorical",), "generic", BUILTIN_GATES, BACKENDS, ROUTERS, INPUTS,
        "any classifier with predict_proba whose fit takes sample_weight",
        "experts fitted one by one (n_jobs)"),
    Row(BATCHED_LIKELIHOODS + ("custom",), "batched_linear", ("linear",), ("numpy",), ROUTERS, ("sparse",),
        "LinearRegression, Ridge (direct solver)",
        "sparse X never densified: sparse weighted Gram matrices, implicit centring"),
    Row(REGRESSION_LIKELIHOODS + ("categorical", "custom"), "generic", ("linear",), ("numpy",), ROUTERS,
        ("sparse",), "any expert whose tags accept sparse X (input_tags.sparse)",
        "sparse X passed to the experts as CSR"),
    Row(REGRESSION_LIKELIHOODS + BATCHED_LIKELIHOODS + ("categorical", "custom"),
        ("batched_linear", "generic"), ("custom",), ("numpy",), ROUTERS, IN_MEMORY_INPUTS,
        "as the rows above", "a gate object trains itself: the backend applies to built-in gates only; "
        "sparse X if its tags accept it"),
    Row(("custom",), "generic", BUILTIN_GATES, BACKENDS, ROUTERS, INPUTS,
        "experts that predict what the likelihood's expert_outputs needs", "a BaseLikelihood subclass"),
    Row(("gaussian",), "batched_linear", ("linear",), ("numpy",), ("soft",), ("dask",),
        "LinearRegression, Ridge (direct solver)", "blockwise EM on Dask arrays (regressor)"),
    Row(("custom",), "batched_linear", BUILTIN_GATES, BACKENDS, ROUTERS, INPUTS,
        "LinearRegression, Ridge, when the likelihood declares least_squares=True",
        "a BaseLikelihood subclass"),
)

_PREFERENCE = ("backend", "input", "router", "solver", "gate", "likelihood")

_FIXES = {
    "input": "densify X (X.toarray(), or OneHotEncoder(sparse_output=False) in the pipeline); "
             "sparse X takes gate='linear' with backend='numpy' (or a gate object whose tags "
             "accept sparse input)",
    "backend": "leave backend='numpy' (the default): a gate object trains itself, "
               "the backend applies to gate='linear' or 'mlp' only, and sparse X needs "
               "the NumPy linear gate",
    "gate": "gate='linear'",
    "router": "the default soft EM",
    "solver": "the generic expert solver (any estimator with sample_weight)",
    "likelihood": "the default likelihood",
}


def _matches(row, combination):
    for field in Combination._fields:
        allowed = getattr(row, field)
        value = getattr(combination, field)
        if isinstance(allowed, tuple):
            if value not in allowed:
                return False
        elif allowed != value:
            return False
    return True


def _distance(row, combination):
    """Fields of ``combination`` that ``row`` does not allow."""
    return [
        field for field in Combination._fields
        if not _matches(row._replace(**{f: getattr(combination, f) for f in Combination._fields if f != field}), combination)
    ]


def check_combination(combination):
    """Refuse a combination that no row of :data:`SUPPORTED` allows.

    Parameters
    ----------
    combination : Combination
        The fit's plug-ins.

    Raises
    ------
    TypeError
        For sparse input that the rest of the combination takes densified
        (scikit-learn's convention for refused sparse input), naming the fix.
    ValueError
        Otherwise, naming the combination, what does not fit, and the nearest
        supported combination.
    """
    if any(_matches(row, combination) for row in SUPPORTED):
        return
    def cost(row):
        # Fewest changed fields; among those, change what the user chose least deliberately.
        differ = _distance(row, combination)
        return len(differ), sorted(_PREFERENCE.index(f) for f in differ)

    nearest = min(SUPPORTED, key=cost)
    differ = _distance(nearest, combination)
    described = ", ".join(f"{f}={getattr(combination, f)!r}" for f in Combination._fields)
    fixes = "; ".join(_FIXES.get(f, f) for f in differ)
    reason = " and ".join(f"{f}={getattr(combination, f)!r}" for f in differ)
    # Sparse X that the rest would take densified is refused as scikit-learn
    # refuses sparse input: with a TypeError.
    dense = combination._replace(input="dense")
    sparse_only = combination.input == "sparse" and any(_matches(row, dense) for row in SUPPORTED)
    raise (TypeError if sparse_only else ValueError)(
        f"Unsupported combination ({described}): {reason} is not supported with the "
        f"rest. The nearest supported combination changes {', '.join(differ)}: {fixes}."
    )


def _join(value):
    return ", ".join(dict.fromkeys(value)) if isinstance(value, tuple) else value


def combination_table_rst():
    """The table of :data:`SUPPORTED` as a reStructuredText list-table.

    Returns
    -------
    text : str
        The table, for the user guide.
    """
    lines = [
        ".. list-table:: Supported combinations",
        "   :header-rows: 1",
        "",
        "   * - likelihood",
        "     - experts (solver)",
        "     - gate",
        "     - backend",
        "     - routing",
        "     - input",
        "     - note",
    ]
    for row in SUPPORTED:
        lines += [
            f"   * - {_join(row.likelihood)}",
            f"     - {row.experts} (``{_join(row.solver)}``)",
            f"     - {_join(row.gate)}",
            f"     - {_join(row.backend)}",
            f"     - {_join(row.router)}",
            f"     - {_join(row.input)}",
            f"     - {row.note}",
        ]
    return "\n".join(lines) + "\n"
