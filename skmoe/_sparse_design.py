"""The standardised design of the initialisation on sparse ``X``, kept implicit.

The k-means and random initialisations (:mod:`skmoe._init`) work on the
weighted-standardised design ``Z = [(X - mean) / scale, y_std]``. For
sparse ``X`` that matrix would be dense, so :class:`StandardisedSparseDesign`
stands for it without forming it: it holds the CSR ``X``, the columns'
mean and scale, and the few dense standardised columns (the target), and
answers the operations the initialisation uses (products with small dense
matrices, row slices, single rows, weighted column moments, squared
distances) from sparse-dense products, with the mean folded in as a
rank-one correction. The results equal those on the dense ``Z`` up to
rounding, so a sparse fit starts from the dense fit's partition.
"""

import numpy as np
import scipy.sparse as sp

from ._sparse import block_rows, left_matmul, row_block, weighted_column_squares


class StandardisedSparseDesign:
    """``Z = [(X - mean) / scale, dense]`` without forming it (see the module docstring).

    Supports ``Z.shape``, ``Z @ M`` (``M`` of shape ``(n_columns,)`` or
    ``(n_columns, k)``), ``M @ Z`` (``M`` of shape ``(k, n_rows)``), ``Z[i]``
    (a dense row) and ``Z[lo:hi]`` (a design over those rows, sharing the
    arrays).

    Parameters
    ----------
    X : sparse matrix of shape (n_samples, n_features)
        CSR data.
    mean, scale : ndarray of shape (n_features,)
        Weighted mean and standard deviation of the columns of ``X``.
    dense : ndarray of shape (n_samples, n_dense)
        Columns appended as they are (the standardised target), possibly none.
    """

    # NumPy defers ``M @ Z`` to :meth:`__rmatmul__` instead of converting Z to an array.
    __array_ufunc__ = None

    def __init__(self, X, mean, scale, dense):
        self.X = X
        self.mean = np.asarray(mean, dtype=np.float64)
        self.inv_scale = 1.0 / np.asarray(scale, dtype=np.float64)
        self.dense = np.asarray(dense, dtype=np.float64).reshape(X.shape[0], -1)
        self._d = X.shape[1]
        self._norms = None

    @property
    def shape(self):
        return (self.X.shape[0], self._d + self.dense.shape[1])

    def __getitem__(self, key):
        if isinstance(key, slice):
            lo, hi, step = key.indices(self.X.shape[0])
            if step != 1:  # pragma: no cover - not used by the initialisation
                raise IndexError("StandardisedSparseDesign supports contiguous row slices only.")
            return StandardisedSparseDesign(
                row_block(self.X, lo, hi), self.mean, 1.0 / self.inv_scale, self.dense[lo:hi]
            )
        i = int(key)
        row = np.asarray(self.X[i].toarray(), dtype=np.float64).ravel()
        return np.concatenate([(row - self.mean) * self.inv_scale, self.dense[i]])

    def __matmul__(self, M):
        """``Z @ M``: ``X @ (M_x / scale) - (mean / scale) @ M_x + dense @ M_d``."""
        M = np.asarray(M, dtype=np.float64)
        vector = M.ndim == 1
        M2 = M[:, None] if vector else M
        Mx = M2[: self._d] * self.inv_scale[:, None]
        out = np.asarray(self.X @ Mx, dtype=np.float64)
        out -= self.mean @ Mx
        out += self.dense @ M2[self._d :]
        return out.ravel() if vector else out

    def __rmatmul__(self, M):
        """``M @ Z``: weighted sums of the rows, ``(M @ X - M.sum(1) mean) / scale`` beside ``M @ dense``."""
        M = np.asarray(M, dtype=np.float64)
        vector = M.ndim == 1
        M2 = M[None, :] if vector else M
        sums = left_matmul(M2, self.X)
        sums -= np.outer(M2.sum(axis=1), self.mean)
        sums *= self.inv_scale
        out = np.hstack([sums, M2 @ self.dense])
        return out.ravel() if vector else out

    def squared_norms(self):
        """``||z_i||^2`` of every row, from the non-zeros (float64; computed once)."""
        if self._norms is None:
            self._norms = self._squared_norms()
        return self._norms

    def _squared_norms(self):
        n = self.X.shape[0]
        shifted = self.mean * self.inv_scale
        out = np.empty(n)
        step = block_rows(self.X)
        for lo in range(0, n, step):
            block = row_block(self.X, lo, min(n, lo + step))
            scaled = block.data * self.inv_scale[block.indices]
            rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
            # ||x s - m s||^2 = ||x s||^2 - 2 (x s).(m s) + ||m s||^2
            squares = np.bincount(rows, weights=scaled * scaled, minlength=block.shape[0])
            cross = np.bincount(rows, weights=scaled * shifted[block.indices], minlength=block.shape[0])
            out[lo : lo + block.shape[0]] = squares - 2.0 * cross
        out += shifted @ shifted
        out += np.einsum("ij,ij->i", self.dense, self.dense)
        return np.maximum(out, 0.0)

    def squared_distances(self, centers, labels=None):
        """``||z_i - c||^2`` to every centre ``(n_samples, n_centers)``, or to ``centers[labels]``.

        Expanded as ``||z||^2 - 2 z.c + ||c||^2`` (the sparse rows are never
        formed), clipped at 0.
        """
        norms = self.squared_norms()
        centers = np.atleast_2d(centers)
        products = self @ centers.T
        c_sq = np.einsum("ij,ij->i", centers, centers)
        if labels is not None:
            rows = np.arange(products.shape[0])
            dist = norms - 2.0 * products[rows, labels] + c_sq[labels]
        else:
            dist = norms[:, None] - 2.0 * products + c_sq
        return np.maximum(dist, 0.0)

    def column_moments(self, weight):
        """Weighted sums ``sum_i w_i z_ij`` and ``sum_i w_i z_ij^2`` of every column."""
        weight = np.asarray(weight, dtype=np.float64)
        first = weight @ self
        second_x = weighted_column_squares(self.X, weight, self.mean) * self.inv_scale**2
        second = np.concatenate([second_x, weight @ (self.dense * self.dense)])
        return first, second

    def scaled_matrix(self):
        """``[X / scale, dense]`` as a new CSR matrix: ``Z`` up to a translation of each column.

        For a user's clusterer: distances, and hence clusters, do not change
        when every row is translated by the same vector, and the centring
        would fill the matrix.
        """
        scaled = sp.csr_matrix(
            (self.X.data * self.inv_scale[self.X.indices], self.X.indices.copy(), self.X.indptr.copy()),
            shape=self.X.shape,
        )
        return sp.hstack([scaled, sp.csr_matrix(self.dense)], format="csr")
