"""Command line of skmoe: ``python -m skmoe demo``.

The demo fits mixtures of linear experts to the motorcycle crash data, picks
the number of experts by BIC, and compares the chosen mixture by
cross-validated mean squared error with three scikit-learn baselines.
"""

import argparse
import sys

import numpy as np

def _mixture(n_experts, random_state):
    from sklearn.linear_model import LinearRegression

    from skmoe import MixtureOfExpertsRegressor

    return MixtureOfExpertsRegressor(
        n_experts=n_experts,
        expert=LinearRegression(),
        n_init=3,
        random_state=random_state,
    )


def run_demo(n_splits=10, max_experts=6, random_state=0, file=sys.stdout):
    """Choose ``n_experts`` by BIC on the motorcycle data and compare models.

    For ``k = 1 .. max_experts`` a mixture of ``k`` linear experts (3 EM
    restarts) is fitted to all the data and its BIC printed; the ``k`` with
    the lowest BIC is kept. Then the mixture with that ``k``, a linear
    regression, a depth-4 decision tree and histogram gradient boosting are
    compared by ``n_splits``-fold cross-validated mean squared error (shuffled
    folds), each also as a ratio to the mixture's error.

    Parameters
    ----------
    n_splits : int, default=10
        Number of cross-validation folds (at least 2).
    max_experts : int, default=6
        Largest number of experts tried (at least 1).
    random_state : int, default=0
        Seed of the mixtures, the tree, the boosting and the fold shuffling.
    file : file-like, default=sys.stdout
        Where the report is printed.

    Returns
    -------
    results : dict
        ``"bic"``: dict ``{n_experts: BIC}``; ``"n_experts"``: the chosen
        number; ``"mse"``: dict ``{model name: ndarray of shape (n_splits,)}``
        of the per-fold test MSE of each of the four models, the mixture
        first; ``"ratio"``: dict ``{model name: mean MSE / mixture's mean
        MSE}``.

    Examples
    --------
    >>> import io
    >>> from skmoe.__main__ import run_demo
    >>> results = run_demo(n_splits=2, max_experts=2, file=io.StringIO())
    >>> results["n_experts"] in (1, 2), len(results["mse"])
    (True, 4)
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.tree import DecisionTreeRegressor

    from skmoe.datasets import load_motorcycle

    for name, value, low in (("n_splits", n_splits, 2), ("max_experts", max_experts, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")

    X, y = load_motorcycle(return_X_y=True)
    print(
        f"Motorcycle crash data: {X.shape[0]} samples, head acceleration (g) "
        "against time after impact (ms).",
        file=file,
    )

    print("\nNumber of linear experts chosen by BIC (lower is better):", file=file)
    bic = {}
    for k in range(1, max_experts + 1):
        bic[k] = float(_mixture(k, random_state).fit(X, y).bic(X, y))
    best = min(bic, key=bic.get)
    for k, value in bic.items():
        mark = "  <- chosen" if k == best else ""
        print(f"  n_experts={k}  BIC={value:10.1f}{mark}", file=file)

    mixture_name = f"MixtureOfExperts(n_experts={best})"
    models = {
        mixture_name: _mixture(best, random_state),
        "LinearRegression": LinearRegression(),
        "DecisionTree(max_depth=4)": DecisionTreeRegressor(
            max_depth=4, random_state=random_state
        ),
        "HistGradientBoosting": HistGradientBoostingRegressor(random_state=random_state),
    }
    cv = KFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    mse = {
        name: -cross_val_score(model, X, y, scoring="neg_mean_squared_error", cv=cv)
        for name, model in models.items()
    }
    reference = mse[mixture_name].mean()
    ratio = {name: float(scores.mean() / reference) for name, scores in mse.items()}

    width = max(len(name) for name in models)
    print(f"\n{n_splits}-fold cross-validated mean squared error:", file=file)
    header = f"  {'model':<{width}}  {'MSE mean':>9}  {'MSE std':>8}  {'/ mixture':>9}"
    print(header, file=file)
    print("  " + "-" * (len(header) - 2), file=file)
    for name, scores in mse.items():
        print(
            f"  {name:<{width}}  {scores.mean():9.1f}  {scores.std():8.1f}  "
            f"{ratio[name]:9.2f}",
            file=file,
        )
    return {"bic": bic, "n_experts": best, "mse": mse, "ratio": ratio}


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m skmoe",
        description="skmoe: mixture-of-experts estimators for scikit-learn.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command")
    demo = commands.add_parser(
        "demo",
        help="fit mixtures of linear experts to the motorcycle data and compare "
        "them with scikit-learn baselines",
        description="Choose the number of linear experts for the motorcycle crash "
        "data by BIC, then compare the mixture with LinearRegression, a depth-4 "
        "decision tree and HistGradientBoostingRegressor by cross-validated MSE.",
    )
    demo.add_argument(
        "--n-splits", type=int, default=10, help="cross-validation folds (default: 10)"
    )
    demo.add_argument(
        "--max-experts",
        type=int,
        default=6,
        help="largest number of experts tried for BIC (default: 6)",
    )
    demo.add_argument(
        "--random-state", type=int, default=0, help="random seed (default: 0)"
    )
    return parser


def main(argv=None):
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success, 2 on a usage error (no command).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.n_splits < 2:
        parser.error(f"--n-splits must be at least 2, got {args.n_splits}")
    if args.max_experts < 1:
        parser.error(f"--max-experts must be at least 1, got {args.max_experts}")
    run_demo(
        n_splits=args.n_splits,
        max_experts=args.max_experts,
        random_state=args.random_state,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
