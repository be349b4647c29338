"""Small helpers shared by the inference modules."""


def import_pandas(message):
    """Import and return :mod:`pandas`, or raise an ImportError with ``message``.

    Parameters
    ----------
    message : str
        The error message, naming the caller.

    Returns
    -------
    pandas : module
        The :mod:`pandas` module.
    """
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(message) from exc
    return pandas
