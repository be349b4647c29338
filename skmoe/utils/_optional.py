"""Optional dependencies, imported only when a feature needs them.

PyTorch is heavy and optional: ``import skmoe`` never imports it. Code that
needs it calls :func:`import_torch` at the point of use, which gives one clear
error message when it is missing.
"""

TORCH_MISSING_MESSAGE = (
    "backend='torch' requires PyTorch; install it with `pip install torch`"
)


def import_torch():
    """Import and return :mod:`torch`, or fail with installation advice.

    Returns
    -------
    torch : module
        The :mod:`torch` module.

    Raises
    ------
    ImportError
        If PyTorch cannot be imported; the message says how to install it.

    Examples
    --------
    >>> from skmoe.utils._optional import import_torch
    >>> torch = import_torch()
    """
    try:
        import torch
    except ImportError as exc:
        raise ImportError(TORCH_MISSING_MESSAGE) from exc
    return torch
