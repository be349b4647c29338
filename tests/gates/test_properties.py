"""Property tests: every gate returns probability rows that sum to one."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose

from skmoe.gates import LinearGate, MLPGate

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-3, max_value=1.0, allow_nan=False)


@st.composite
def gate_problems(draw):
    n_samples = draw(st.integers(min_value=2, max_value=25))
    n_features = draw(st.integers(min_value=1, max_value=3))
    n_experts = draw(st.integers(min_value=2, max_value=4))
    X = draw(arrays(np.float64, (n_samples, n_features), elements=finite))
    resp = draw(arrays(np.float64, (n_samples, n_experts), elements=positive))
    X_new = draw(arrays(np.float64, (5, n_features), elements=finite))
    return X, resp, X_new


GATES = [
    LinearGate(max_iter=30),
    MLPGate(hidden_layer_sizes=(3,), max_iter=30, random_state=0),
    MLPGate(hidden_layer_sizes=(4,), activation="relu", max_iter=30, random_state=0),
]


@settings(deadline=None, max_examples=25, database=None)
@given(problem=gate_problems(), gate_index=st.integers(0, len(GATES) - 1))
def test_gate_probabilities_rows_sum_to_one(problem, gate_index):
    X, resp, X_new = problem
    gate = GATES[gate_index].__sklearn_clone__().fit(X, resp)
    for data in (X, X_new):
        log_proba = gate.predict_log_proba(data)
        assert log_proba.shape == (len(data), resp.shape[1])
        assert np.all(np.isfinite(log_proba))
        assert np.all(log_proba <= 1e-12)
        assert_allclose(np.exp(log_proba).sum(axis=1), 1.0, rtol=1e-10)
