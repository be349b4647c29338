import os

import numpy as np
import pytest

try:
    from hypothesis import settings

    settings.register_profile("ci", deadline=None, max_examples=60, database=None)
    settings.register_profile("dev", deadline=None, max_examples=30)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(params=[0, 1, 42])
def global_random_seed(request):
    """A few seeds, as scikit-learn's global_random_seed fixture gives."""
    return request.param


@pytest.fixture
def rng():
    return np.random.RandomState(0)
