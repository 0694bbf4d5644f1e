"""Library failures become Python exceptions carrying the library's message;
bad arrays are refused before any call into the library; the mirrored
structs match the library's layout; results are zero-copy where promised."""

import ctypes
import gc
import unittest
from unittest import mock

import numpy as np

import scoreloss as sl
from scoreloss import _lib
from slhelp import CliCase


class TestLibraryErrors(CliCase):
    def test_message_is_the_librarys(self):
        """The exception's text is the library's message, which the command
        line prints after its own prefix."""
        with self.assertRaises(sl.InvalidArgument) as cm:
            sl.sample("nosuch", 3, 2)
        msg = str(cm.exception)
        self.assertIn("unknown distribution 'nosuch'", msg)
        self.assertEqual(cm.exception.status, _lib.SL_EINVAL)
        self.assertEqual(cm.exception.status_name, "invalid argument")
        _, _, err = self.cli("sample", "--dist", "nosuch", "--d", 2, "--n", 3, "-o", "-", ok=False)
        self.assertIn(msg, err)

    def test_bad_option_values(self):
        X = sl.sample("gauss", 200, 3, seed=1)
        y, W, a = sl.plant(X, 2, seed=1)
        cases = [
            (dict(lr=-1.0), sl.InvalidArgument, "option lr: expected a number > 0, got '-1.0'"),
            (dict(loss="nosuch"), sl.InvalidArgument, "unknown loss 'nosuch'"),
            (dict(score="nosuch"), sl.InvalidArgument, "unknown score source 'nosuch'"),
            (dict(act="nosuch"), sl.InvalidArgument, "option act:"),
            (dict(epochs="many"), sl.InvalidArgument, "option epochs"),
            (dict(holdout=1.0), sl.InvalidArgument, "option holdout: expected a number in [0, 1)"),
            (dict(bandwidth="knn:x"), sl.InvalidArgument, "option bandwidth"),
            (dict(constraint="none"), sl.InvalidArgument, "needs"),  # no lambda: the library
            (dict(score="exact", dist="gauss", route="bogus"), sl.InvalidArgument, "route"),
            (dict(score="hermite", route="projected", mode="minibatch"), sl.InvalidArgument,
             "runs on the tensor T only"),
        ]
        for kw, exc, text in cases:
            with self.subTest(kw=kw):
                with self.assertRaises(exc) as cm:
                    sl.recover(X, y, 2, epochs=kw.pop("epochs", 1), **kw)
                self.assertIn(text, str(cm.exception))
        with self.assertRaises(TypeError):
            sl.recover(X, y, 2, nosuch=1)
        with self.assertRaises(TypeError):
            sl.recover(X, y, 2, lr=True)
        with self.assertRaises(ValueError):
            sl.recover(X, y, 2, score="exact")  # no dist
        # Options the run would ignore are refused, as on the command line.
        for kw in (dict(loss="l2", bandwidth=1.0), dict(loss="l2", score="hermite"),
                   dict(loss="l2", mu=0.3), dict(score="hermite", bandwidth=0.5),
                   dict(score="llsfe", dist="gauss"), dict(score="gauss", route="full"),
                   dict(score="exact", dist="gauss", assume="independent"),
                   dict(score="llsfe", route="quadratic", s4="kde"),
                   dict(loss="l2", u_rows=10)):
            with self.subTest(ignored=kw):
                with mock.patch.object(_lib, "lib", Forbidden()):
                    with self.assertRaises(ValueError):
                        sl.recover(X, y, 2, **kw)
        with self.assertRaises(sl.InvalidArgument):
            sl.score(X, method="nosuch")
        with self.assertRaises(sl.InvalidArgument) as cm:
            sl.score(X, bandwidth="knn:1000")  # more neighbours than samples
        self.assertTrue(str(cm.exception))
        with self.assertRaises(ValueError):
            sl.score(X, bandwidth=0.5, bw_const=1.0)

    def test_numerical_failure(self):
        """Constant labels: M2 = 0 has no k-dimensional signal."""
        X = sl.sample("gauss", 300, 3, seed=2)
        with self.assertRaises(sl.NumericalError) as cm:
            sl.recover(X, np.zeros(300), 2, score="hermite", epochs=1)
        self.assertEqual(cm.exception.status, _lib.SL_ENUMERIC)
        self.assertTrue(str(cm.exception))

    def test_unsupported(self):
        D = sl.Distribution.from_samples(np.eye(3))
        with self.assertRaises(sl.Unsupported) as cm:
            D.exact_score(np.zeros((1, 3)))
        self.assertIn("sample-only", str(cm.exception))

    def test_dimension_mismatch(self):
        D = sl.Distribution("gauss", 3)
        with self.assertRaises(ValueError):
            sl.exact_score(D, np.zeros((2, 4)))


class Forbidden:
    """Stands in for the library: any use fails the test."""

    def __getattr__(self, name):
        raise AssertionError("the library was called (%s) for a bad array" % name)


class TestBadArrays(unittest.TestCase):
    def setUp(self):
        self.X = np.random.default_rng(0).standard_normal((50, 3))
        self.y = np.ones(50)

    def rejects(self, fn, *args, text=None, **kw):
        with mock.patch.object(_lib, "lib", Forbidden()):
            with self.assertRaises(ValueError) as cm:
                fn(*args, **kw)
        self.assertIsInstance(cm.exception, sl.ArrayError)
        if text:
            self.assertIn(text, str(cm.exception))

    def test_bad_inputs(self):
        X, y = self.X, self.y
        nan = X.copy()
        nan[4, 1] = np.nan
        inf = X.copy()
        inf[2, 0] = -np.inf
        for fn, args, text in [
            (sl.score, (X.astype(np.complex128),), "dtype complex128"),
            (sl.score, (np.array([["a", "b"]]),), "dtype <U1"),
            (sl.score, (X.astype(object),), "dtype object"),
            (sl.score, (X.astype(bool),), "dtype bool"),
            (sl.score, (X[:, 0],), "expected a 2-D array"),
            (sl.score, (X[None],), "expected a 2-D array"),
            (sl.score, (np.zeros((0, 3)),), "empty"),
            (sl.score, (nan,), "1 non-finite entry (the first, nan, at index (4, 1))"),
            (sl.score, (inf,), "non-finite"),
            (sl.score, ([[1, 2], [3]],), "X: not an array of numbers"),
            (sl.exact_score, ("gauss", nan), "non-finite"),
            (sl.plant, (nan, 2), "non-finite"),
            (sl.recover, (X, y[:-1], 2), "y: expected 50 along axis 0"),
            (sl.recover, (X, y[:, None], 2), "y: expected a 1-D array"),
            (sl.recover, (X, np.full(50, np.inf), 2), "y: 50 non-finite entries"),
            (sl.recover, (nan, y, 2), "X:"),
            (sl.predict, (X, np.ones((2, 4)), np.ones(2)), "network W: expected 3 along axis 1"),
            (sl.predict, (X, np.ones((2, 3)), np.ones(3)), "network a: expected 2"),
        ]:
            with self.subTest(fn=fn.__name__, text=text):
                self.rejects(fn, *args, text=text)
        with self.subTest("at"):
            self.rejects(sl.score, X, at=np.zeros((4, 2)), text="at: expected 3 along axis 1")
        with self.subTest("truth"):
            self.rejects(sl.recover, X, y, 2, truth=(np.ones((2, 5)), np.ones(2)),
                         text="truth W")
        with self.subTest("w"):
            self.rejects(sl.plant, X, w=np.full((2, 3), np.nan), text="w:")

    def test_bad_counts(self):
        with mock.patch.object(_lib, "lib", Forbidden()):
            with self.assertRaises(ValueError):
                sl.recover(self.X, self.y, 4)  # k > d
            with self.assertRaises(ValueError):
                sl.recover(self.X, self.y, 0)
            with self.assertRaises(TypeError):
                sl.recover(self.X, self.y, 1.5)
            with self.assertRaises(ValueError):
                sl.sample("gauss", 10, 2, seed=-1)
            with self.assertRaises(ValueError):
                sl.plant(self.X, 4)
            with self.assertRaises(ValueError):
                sl.plant(self.X, 2, noise=-0.1)


class TestLayoutAndCopies(unittest.TestCase):
    def test_mirrored_structs_match_the_library(self):
        self.assertEqual(_lib.layout_mismatches(), [])
        for name, cls in _lib.MIRRORED.items():
            self.assertEqual(_lib.lib.sl_bind_layout(name.encode(), None), ctypes.sizeof(cls))
        self.assertEqual(_lib.lib.sl_bind_layout(b"nosuch", None), -1)
        self.assertEqual(_lib.lib.sl_bind_layout(b"sl_network", b"nosuch"), -1)

    def test_inputs_zero_copy_when_the_layout_allows(self):
        X = np.random.default_rng(1).standard_normal((10, 2))
        self.assertIs(_lib.as_array(X, "X", 2), X)
        F = np.asfortranarray(X)
        C = _lib.as_array(F, "X", 2)
        self.assertTrue(C.flags.c_contiguous)
        self.assertFalse(np.shares_memory(C, F))
        np.testing.assert_array_equal(C, X)
        I = _lib.as_array(np.arange(6).reshape(3, 2), "X", 2)
        self.assertEqual(I.dtype, np.float64)
        # Strided views and float32 are converted, with the same results.
        big = np.random.default_rng(2).standard_normal((40, 4))
        g1, _ = sl.score(big[:, ::2], method="gauss")
        g2, _ = sl.score(np.ascontiguousarray(big[:, ::2]), method="gauss")
        np.testing.assert_array_equal(g1, g2)

    def test_scores_are_views_that_keep_the_result_alive(self):
        X = np.random.default_rng(3).standard_normal((30, 2))
        s = sl.score(X, method="hermite")
        g, H = s
        del s
        gc.collect()
        junk = [np.ones(1000) for _ in range(50)]  # reuse freed memory if any
        np.testing.assert_array_equal(g, -X)
        np.testing.assert_array_equal(H, np.broadcast_to(-np.eye(2), (30, 2, 2)))
        del junk


if __name__ == "__main__":
    unittest.main()
