"""Small helpers shared by the inference modules."""

from .._docstrings import INFERENCE_DOC, doc_filler

# Fills the shared example text (``%(example_fit)s``) into a docstring.
fill_doc = doc_filler(INFERENCE_DOC)


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
