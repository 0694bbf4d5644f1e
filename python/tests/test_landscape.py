"""scoreloss.landscape equals `scoreloss landscape` on the same data and
seed: the grid, the loss and its gradient norm at every point, the marks."""

import unittest

import numpy as np

import scoreloss as sl
from slhelp import CliCase, read_csv, write_csv


@unittest.skipUnless(hasattr(sl, "landscape"), "the library has no landscape planes (plane.h)")
class TestLandscape(CliCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        X = sl.sample("logistic", 1500, 4, seed=3)
        y, W, a = sl.plant(X, k=2, noise=0.05, seed=3)
        cls.X, cls.y, cls.W, cls.a = X, y, W, a
        # A second network for the "through" plane.
        _, W2, a2 = sl.plant(X, k=2, a="positive", seed=4)
        cls.W2, cls.a2 = W2, a2

    def setUp(self):
        self.data, self.truth = self.path("D.csv"), self.path("T.csv")
        self.second = self.path("T2.csv")
        write_csv(self.data, ["x1", "x2", "x3", "x4", "y"], np.column_stack([self.X, self.y]))
        names = ["a", "w1", "w2", "w3", "w4"]
        write_csv(self.truth, names, np.column_stack([self.a, self.W]))
        write_csv(self.second, names, np.column_stack([self.a2, self.W2]))

    def marks_of(self, path):
        with open(path) as f:
            return [(p[1], float(p[2]), float(p[3]))
                    for p in (ln[2:].split() for ln in f if ln.startswith("# mark "))]

    # (command-line options, Python keyword arguments); every case with the
    # truth except one, whose centre is the best of a short recovery.
    CASES = [
        (["--score", "exact", "--dist", "logistic", "--truth", "T.csv"],
         dict(score="exact", dist="logistic", truth=True)),
        (["--loss", "signfree", "--score", "hermite", "--truth", "T.csv", "--plane", "random",
          "--constraint", "sphere", "--seed", "5"],
         dict(loss="signfree", score="hermite", truth=True, plane="random",
              constraint="sphere", seed=5)),
        (["--score", "llsfe", "--bandwidth", "0.8", "--plane", "through:T2.csv", "--truth",
          "T.csv", "--mu", "0.3"],
         dict(score="llsfe", bandwidth=0.8, plane="through", through=True, truth=True, mu=0.3)),
        (["--loss", "l2", "--plane", "random", "--truth", "T.csv", "--subsample", "500",
          "--span", "0.5"],
         dict(loss="l2", plane="random", truth=True, subsample=500, span=0.5)),
        (["--loss", "l2", "--plane", "through:T2.csv", "--truth", "T.csv", "--subsample", "300",
          "--act", "relu"],
         dict(loss="l2", plane="through", through=True, truth=True, subsample=300)),
        (["--loss", "l2", "--score", "gauss", "--plane", "angles", "--subsample", "400",
          "--truth", "T.csv"],
         dict(loss="l2", score="gauss", plane="angles", subsample=400, truth=True)),
        (["--score", "gauss", "--plane", "random", "--restarts", "1"],
         dict(score="gauss", plane="random", restarts=1)),
    ]

    def test_equal_to_cli(self):
        G = 15
        for args, kw in self.CASES:
            with self.subTest(args=" ".join(args)):
                out = self.path("L.csv")
                self.cli("landscape", "--input", self.data, "--k", 2, "--grid", G, *args,
                         "-o", out)
                names, Lc = read_csv(out)
                self.assertEqual(names, ["u", "v", "loss", "grad_norm"])
                kw = dict(kw)
                if kw.pop("truth", False):
                    kw["truth"] = (self.W, self.a)
                if kw.pop("through", False):
                    kw["through"] = (self.W2, self.a2)
                r = sl.landscape(self.X, self.y, 2, grid=G, **kw)
                self.assertEqual(r.loss.shape, (G, G))
                np.testing.assert_array_equal(r.rows(), Lc)
                cm = self.marks_of(out)
                self.assertEqual([m[0] for m in r.marks], [m[0] for m in cm])
                # Marks are printed with 10 significant digits.
                for (_, u1, v1), (_, u2, v2) in zip(r.marks, cm):
                    self.assertAlmostEqual(u1, u2, delta=1e-9)
                    self.assertAlmostEqual(v1, v2, delta=1e-9)

    def test_bad_arguments(self):
        X, y = self.X, self.y
        with self.assertRaises(ValueError):
            sl.landscape(X, y, 3, plane="angles")
        with self.assertRaises(ValueError):
            sl.landscape(X, y, 2, plane="through")
        with self.assertRaises(ValueError):
            sl.landscape(X, y, 2, plane="angles", span=1.0)
        with self.assertRaises(ValueError):
            sl.landscape(X, y, 2, grid=2)
        with self.assertRaises(ValueError):
            sl.landscape(X, y, 2, loss="nosuch")
        with self.assertRaises(sl.ArrayError):
            sl.landscape(X, y[:-1], 2)


if __name__ == "__main__":
    unittest.main()
