"""A distribution written as Python callables, used where the library takes
a distribution: sampling, exact scores, score(method="exact") and
recover(score="exact")."""

import unittest

import numpy as np

import scoreloss as sl


def gaussian(m):
    """N(m, I) in Python: sampler, gradient -(x - m), Hessian -I."""
    m = np.asarray(m, dtype=float)
    d = len(m)
    return sl.Distribution.custom(
        sampler=lambda rng, n, dd: m + rng.standard_normal((n, dd)),
        gradient=lambda x: -(x - m),
        hessian=lambda x: -np.eye(d),
        log_density=lambda x: -0.5 * float((x - m) @ (x - m)) - 0.5 * d * np.log(2 * np.pi),
        d=d,
        name="pygauss",
    )


class TestCustomDistribution(unittest.TestCase):
    def test_sampling_depends_on_the_seed_only(self):
        D = gaussian([1.0, -2.0])
        self.assertEqual(D.name, "pygauss")
        self.assertEqual(D.d, 2)
        self.assertTrue(D.has_exact_scores)
        # 10000 rows: three of the library's 4096-row blocks, drawn in
        # parallel (OMP_NUM_THREADS=2 in the test environment).
        A = D.sample(10000, seed=5)
        B = sl.sample(D, 10000, seed=5)
        C = D.sample(10000, seed=6)
        np.testing.assert_array_equal(A, B)
        self.assertFalse(np.array_equal(A, C))
        # Blocks are distinct streams: no block repeats another.
        self.assertFalse(np.array_equal(A[:4096], A[4096:8192]))
        # The mean is m within 5 standard errors (se = 1/sqrt(10000) = 0.01).
        np.testing.assert_allclose(A.mean(axis=0), [1.0, -2.0], atol=0.05)

    def test_exact_scores_through_the_library(self):
        D = gaussian([0.0, 0.0, 0.0])
        X = sl.sample("gauss", 100, 3, seed=1)
        g, H = sl.exact_score(D, X)
        np.testing.assert_array_equal(g, -X)
        np.testing.assert_array_equal(H, np.broadcast_to(-np.eye(3), (100, 3, 3)))
        # The same as the built-in N(0, I), through score(method="exact") too.
        gb, Hb = sl.exact_score("gauss", X)
        np.testing.assert_array_equal(g, gb)
        np.testing.assert_array_equal(H, Hb)
        gs, Hs = sl.score(X, method="exact", dist=D)
        np.testing.assert_array_equal(gs, gb)
        np.testing.assert_allclose(D.log_density(X[:2]), -0.5 * (X[:2] ** 2).sum(1)
                                   - 1.5 * np.log(2 * np.pi), rtol=1e-15)

    def test_recover_with_python_scores_equals_builtin(self):
        """Recovery on the quadratic route from the Python N(0, I) gives the
        built-in gauss's numbers: the per-point scores are identical."""
        X = sl.sample("gauss", 1500, 3, seed=8)
        y, W, a = sl.plant(X, 2, noise=0.05, seed=8)
        kw = dict(score="exact", route="quadratic", epochs=1, restarts=1, truth=(W, a))
        r_py = sl.recover(X, y, 2, dist=gaussian([0.0, 0.0, 0.0]), **kw)
        r_c = sl.recover(X, y, 2, dist="gauss", **kw)
        np.testing.assert_array_equal(r_py.W_hat, r_c.W_hat)
        np.testing.assert_array_equal(r_py.a_hat, r_c.a_hat)
        self.assertEqual(r_py.route, "quadratic")

    def test_sample_only(self):
        D = sl.Distribution.custom(lambda rng, n, d: rng.laplace(size=(n, d)), d=2)
        self.assertEqual(D.caps, frozenset({"sample", "smooth"}))
        self.assertEqual(D.sample(5, seed=1).shape, (5, 2))
        with self.assertRaises(sl.Unsupported):
            D.exact_score(np.zeros((1, 2)))

    def test_callback_exceptions_become_library_errors(self):
        def bad_grad(x):
            raise KeyError("boom")

        D = sl.Distribution.custom(lambda rng, n, d: rng.standard_normal((n, d)), d=2,
                                   gradient=bad_grad, hessian=lambda x: -np.eye(2))
        with self.assertRaises(sl.CallbackError) as cm:
            D.exact_score(np.zeros((3, 2)))
        self.assertIsInstance(cm.exception.__cause__, KeyError)
        self.assertIn("gradient", str(cm.exception))
        # A wrong shape and a non-finite value are callback failures too.
        D2 = sl.Distribution.custom(lambda rng, n, d: np.zeros((n, d + 1)), d=2)
        with self.assertRaises(sl.CallbackError) as cm:
            D2.sample(4)
        self.assertIn("shape", str(cm.exception.__cause__))
        D3 = sl.Distribution.custom(lambda rng, n, d: np.zeros((n, d)), d=2,
                                    gradient=lambda x: np.array([np.nan, 0.0]),
                                    hessian=lambda x: -np.eye(2))
        with self.assertRaises(sl.CallbackError) as cm:
            sl.score(np.arange(4.0).reshape(2, 2), method="exact", dist=D3)
        self.assertIn("non-finite", str(cm.exception.__cause__))

    def test_argument_checks(self):
        with self.assertRaises(TypeError):
            sl.Distribution.custom(None, d=2)
        with self.assertRaises(ValueError):
            sl.Distribution.custom(lambda rng, n, d: 0, d=2, hessian=lambda x: 0)
        with self.assertRaises(sl.InvalidArgument) as cm:
            sl.Distribution("student:-1", 2)
        self.assertTrue(str(cm.exception))


if __name__ == "__main__":
    unittest.main()
