"""The Python results equal the command line's on the same seed and data:
sample, plant, score and recover. CSV files carry 17 significant digits,
which read back exactly, and every result depends on the seed only (never on
the thread count), so arrays are compared for exact equality unless a
comment says otherwise."""

import unittest

import numpy as np

import scoreloss as sl
from slhelp import PLUGIN, CliCase, read_csv, write_csv, write_x


class TestSample(CliCase):
    # n spans two of the library's 4096-row random blocks.
    CASES = [
        ("logistic", 3, 5000, 7),
        ("gauss", 2, 300, 1),
        ("student:4", 4, 200, 123456789012345),
        ("gmm2", 3, 100, 0),
        ("agmm", 2, 100, 5),
        ("laplace", 2, 50, 3),
    ]

    def test_equal_to_cli(self):
        for spec, d, n, seed in self.CASES:
            with self.subTest(spec=spec):
                out = self.path("X_%s.csv" % spec.replace(":", "_"))
                self.cli("sample", "--dist", spec, "--d", d, "--n", n, "--seed", seed, "-o", out)
                names, Xc = read_csv(out)
                self.assertEqual(names, ["x%d" % (j + 1) for j in range(d)])
                Xp = sl.sample(spec, n, d, seed=seed)
                self.assertEqual(Xp.shape, (n, d))
                self.assertEqual(Xp.dtype, np.float64)
                np.testing.assert_array_equal(Xp, Xc)

    def test_distribution_object_and_from_samples(self):
        X = sl.sample("logistic", 40, 2, seed=2)
        src = self.path("src.csv")
        write_x(src, X)
        out = self.path("resampled.csv")
        self.cli("sample", "--input", src, "--n", 300, "--seed", 9, "-o", out)
        _, Xc = read_csv(out)
        D = sl.Distribution.from_samples(X, name="src.csv")
        self.assertEqual(D.caps, frozenset({"sample"}))
        np.testing.assert_array_equal(D.sample(300, seed=9), Xc)
        np.testing.assert_array_equal(sl.sample(D, 300, seed=9), Xc)

    @unittest.skipUnless(PLUGIN, "SCORELOSS_PLUGIN (plugin_gumbel.so) is not set")
    def test_plugin(self):
        spec = "plugin:%s:scale=2" % PLUGIN
        out = self.path("X_plugin.csv")
        self.cli("sample", "--dist", spec, "--d", 3, "--n", 500, "--seed", 4, "-o", out)
        _, Xc = read_csv(out)
        np.testing.assert_array_equal(sl.sample(spec, 500, 3, seed=4), Xc)
        # Its exact scores through the same plug-in equal --method exact's.
        sc = self.path("S_plugin.csv")
        self.cli("score", "--method", "exact", "--dist", spec, "--input", out, "-o", sc)
        _, Sc = read_csv(sc)
        np.testing.assert_array_equal(sl.upper_triangle(*sl.exact_score(spec, Xc)), Sc)


class TestPlant(CliCase):
    def setUp(self):
        self.X = sl.sample("logistic", 700, 4, seed=11)
        self.xfile = self.path("X_plant.csv")
        write_x(self.xfile, self.X)

    def check(self, args, **kw):
        data, truth = self.path("D.csv"), self.path("T.csv")
        self.cli("plant", "--input", self.xfile, *args, "-o", data, "--truth", truth)
        _, D = read_csv(data)
        tnames, T = read_csv(truth)
        self.assertEqual(tnames[0], "a")
        y, W, a = sl.plant(self.X, **kw)
        np.testing.assert_array_equal(D[:, :4], self.X)
        np.testing.assert_array_equal(y, D[:, 4])
        np.testing.assert_array_equal(W, T[:, 1:])
        np.testing.assert_array_equal(a, T[:, 0])
        return y, W, a

    def test_defaults(self):
        y, W, a = self.check(["--k", 2], k=2)
        np.testing.assert_allclose(W @ W.T, np.eye(2), atol=1e-12)  # orthonormal rows
        np.testing.assert_array_equal(a, [1.0, 1.0])

    def test_options(self):
        self.check(
            ["--k", 3, "--act", "tanh", "--w", "random:3", "--a", "positive", "--noise", 0.1,
             "--seed", 5],
            k=3, act="tanh", w="random:3", a="positive", noise=0.1, seed=5)
        self.check(["--k", 2, "--a", "0.5,-2", "--w", "identity", "--seed", 2],
                   k=2, a=[0.5, -2.0], w="identity", seed=2)

    def test_truth_in(self):
        W = np.array([[0.6, 0.8, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
        a = np.array([1.5, 0.5])
        truth_in = self.path("TI.csv")
        write_csv(truth_in, ["a", "w1", "w2", "w3", "w4"], np.column_stack([a, W]))
        self.check(["--truth-in", truth_in, "--noise", 0.2, "--seed", 3, "--act", "softplus"],
                   w=W, a=a, noise=0.2, seed=3, act="softplus")


class TestScore(CliCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.X = sl.sample("logistic", 600, 3, seed=21)
        cls.Q = sl.sample("logistic", 50, 3, seed=22)

    def setUp(self):
        self.xfile, self.qfile = self.path("X.csv"), self.path("Q.csv")
        write_x(self.xfile, self.X)
        write_x(self.qfile, self.Q)

    # (command-line options, Python keyword arguments)
    CASES = [
        (["--method", "llsfe", "--bandwidth", "0.9"], dict(method="llsfe", bandwidth=0.9)),
        (["--method", "llsfe", "--bw-const", "1.3", "--strategy", "neighbours"],
         dict(method="llsfe", bw_const=1.3, strategy="neighbours")),
        (["--method", "llsfe", "--bandwidth", "knn:25", "--shrink", "4"],
         dict(method="llsfe", bandwidth="knn:25", shrink=4)),
        (["--method", "kde", "--bandwidth", "const:1.1"], dict(method="kde", bandwidth="const:1.1")),
        (["--method", "gauss"], dict(method="gauss")),
        (["--method", "hermite"], dict(method="hermite")),
        (["--method", "exact", "--dist", "logistic"], dict(method="exact", dist="logistic")),
    ]

    def test_at_samples_and_queries(self):
        for args, kw in self.CASES:
            for at in (False, True):
                with self.subTest(args=" ".join(args), at=at):
                    out = self.path("S.csv")
                    extra = ["--at", self.qfile] if at else []
                    self.cli("score", *args, "--input", self.xfile, *extra, "-o", out)
                    names, Sc = read_csv(out)
                    self.assertEqual(names[:4], ["g_1", "g_2", "g_3", "h_1_1"])
                    s = sl.score(self.X, at=self.Q if at else None, **kw)
                    g, H = s
                    nq = 50 if at else 600
                    self.assertEqual(g.shape, (nq, 3))
                    self.assertEqual(H.shape, (nq, 3, 3))
                    np.testing.assert_array_equal(sl.upper_triangle(g, H), Sc)
                    np.testing.assert_array_equal(H, np.transpose(H, (0, 2, 1)))
                    self.assertEqual(s.method, kw["method"])

    def test_auto_bandwidth(self):
        """The automatic bandwidth (held-out score matching over a grid; its
        split seeded): one small case, as it costs seconds under the
        sanitizers."""
        X = self.X[:200, :2]
        xfile, out = self.path("X2.csv"), self.path("S2.csv")
        write_x(xfile, X)
        _, _, err = self.cli("score", "--method", "llsfe", "--seed", 3, "--input", xfile, "-o",
                             out)
        _, Sc = read_csv(out)
        s = sl.score(X, seed=3)
        np.testing.assert_array_equal(sl.upper_triangle(*s), Sc)
        shown = float(err.split("bandwidth ")[1].split()[0])  # 6 significant digits
        self.assertAlmostEqual(s.bandwidth, shown, delta=1e-5 * shown)

    def test_exact_score_function(self):
        out = self.path("S_exact.csv")
        self.cli("score", "--method", "exact", "--dist", "student:3", "--input", self.xfile,
                 "-o", out)
        _, Sc = read_csv(out)
        g, H = sl.exact_score("student:3", self.X)
        np.testing.assert_array_equal(sl.upper_triangle(g, H), Sc)
        D = sl.Distribution("student:3", 3)
        g2, H2 = D.exact_score(self.X)
        np.testing.assert_array_equal(g2, g)
        np.testing.assert_array_equal(H2, H)

    def test_reports_what_the_estimator_chose(self):
        s = sl.score(self.X, bandwidth=0.9)
        self.assertEqual(s.bandwidth, 0.9)
        self.assertIn(s.strategy, ("allpairs", "neighbours"))
        self.assertIsNone(s.h)
        _, _, err = self.cli("score", "--method", "llsfe", "--bandwidth", "knn:25", "--input",
                             self.xfile, "-o", self.path("S_knn.csv"))
        s = sl.score(self.X, bandwidth="knn:25")
        self.assertEqual(s.h.shape, (600,))
        # stderr: "llsfe: median bandwidth 0.xxxxx (...)", 6 significant digits.
        shown = float(err.split("median bandwidth ")[1].split()[0])
        self.assertAlmostEqual(s.bandwidth, shown, delta=1e-5 * shown)
        # The library's median of an even count is one of the two middle values.
        mid = np.sort(s.h)[[299, 300]]
        self.assertIn(s.bandwidth, mid)


class TestRecover(CliCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        X = sl.sample("logistic", 3000, 4, seed=31)
        y, W, a = sl.plant(X, k=2, noise=0.05, seed=31)
        cls.X, cls.y, cls.W, cls.a = X, y, W, a

    def setUp(self):
        self.data, self.truth = self.path("DATA.csv"), self.path("TRUTH.csv")
        write_csv(self.data, ["x1", "x2", "x3", "x4", "y"], np.column_stack([self.X, self.y]))
        write_csv(self.truth, ["a", "w1", "w2", "w3", "w4"], np.column_stack([self.a, self.W]))

    # Short runs: the comparison needs the same numbers, not a good recovery.
    CASES = [
        (["--bandwidth", "1.0", "--epochs", "2", "--restarts", "2"],
         dict(bandwidth=1.0, epochs=2, restarts=2)),
        (["--score", "hermite", "--loss", "signfree", "--epochs", "1", "--seed", "4"],
         dict(score="hermite", loss="signfree", epochs=1, seed=4)),
        (["--score", "exact", "--dist", "logistic", "--epochs", "1", "--restarts", "2",
          "--mu", "0.25", "--lr", "0.02"],
         dict(score="exact", dist="logistic", epochs=1, restarts=2, mu=0.25, lr=0.02)),
        (["--score", "gauss", "--route", "quadratic", "--mode", "minibatch", "--batch", "128",
          "--epochs", "2", "--constraint", "sphere", "--holdout", "0.2"],
         dict(score="gauss", route="quadratic", mode="minibatch", batch=128, epochs=2,
              constraint="sphere", holdout=0.2)),
        (["--loss", "l2", "--epochs", "2", "--restarts", "2"],
         dict(loss="l2", epochs=2, restarts=2)),
        (["--score", "gauss", "--route", "quadratic", "--epochs", "1"],
         dict(score="gauss", route="quadratic", epochs=1)),
        (["--score", "gauss", "--s4", "kde", "--s4-bandwidth", "0.9", "--s4-reference", "800",
          "--u-rows", "1000", "--epochs", "1"],
         dict(score="gauss", s4="kde", s4_bandwidth=0.9, s4_reference=800, u_rows=1000,
              epochs=1)),
        (["--score", "gauss", "--assume", "independent", "--epochs", "1"],
         dict(score="gauss", assume="independent", epochs=1)),
        (["--score", "exact", "--dist", "logistic", "--detrend", "0", "--epochs", "1"],
         dict(score="exact", dist="logistic", detrend=0, epochs=1)),
        (["--score", "hermite", "--route", "quadratic", "--detrend", "2", "--epochs", "1"],
         dict(score="hermite", route="quadratic", detrend=2, epochs=1)),
        (["--score", "exact", "--dist", "logistic", "--detrend", "auto", "--epochs", "1"],
         dict(score="exact", dist="logistic", detrend="auto", epochs=1)),
        (["--score", "gauss", "--route", "projected", "--refit", "2", "--refit-scale", "0.3",
          "--refit-rows", "500", "--epochs", "1"],
         dict(score="gauss", route="projected", refit=2, refit_scale=0.3, refit_rows=500,
              epochs=1)),
        (["--score", "gauss", "--route", "projected", "--refit", "1", "--swap", "2",
          "--epochs", "1"],
         dict(score="gauss", route="projected", refit=1, swap=2, epochs=1)),
    ]

    def test_equal_to_cli(self):
        for args, kw in self.CASES:
            with self.subTest(args=" ".join(args)):
                out, trace = self.path("W_HAT.csv"), self.path("TRACE.csv")
                _, summary, _ = self.cli("recover", "--input", self.data, "--k", 2, "--truth",
                                         self.truth, *args, "-o", out, "--trace", trace)
                _, Wc = read_csv(out)
                tnames, Tc = read_csv(trace)
                r = sl.recover(self.X, self.y, 2, truth=(self.W, self.a), **kw)
                np.testing.assert_array_equal(r.W_hat, Wc[:, 1:])
                np.testing.assert_array_equal(r.a_hat, Wc[:, 0])
                self.assertEqual(r.trace.shape[0], Tc.shape[0])
                for j, name in enumerate(tnames):
                    if name == "seconds":
                        continue
                    np.testing.assert_array_equal(
                        r.trace[:, sl.TRACE_COLUMNS.index(name)], Tc[:, j], err_msg=name)
                # The summary prints err_max with 4 significant digits.
                line = [ln for ln in summary.splitlines() if ln.startswith("error:")][0]
                shown = float(line.split()[1])
                self.assertAlmostEqual(r.err_max, shown, delta=5e-4 * max(shown, 1e-3))
                self.assertIn("route %s" % r.route, summary) if kw.get("loss") != "l2" else None
                self.assertIn("sgd: %d steps, stopped by %s" % (r.steps, r.stop_reason), summary)
                for w in r.warnings:
                    self.assertIn("warning: " + w, summary)
                self.assertEqual(r.restart_W.shape, (r.restarts, 2, 4))
                self.assertLessEqual({"scores", "moments", "sgd", "second_layer"}, set(r.seconds))
                if r.t_estimated and not r.independent:
                    self.assertIn("s4", r.seconds)
                    self.assertIn("S_4: %s estimator" % r.s4_estimator, summary)
                    self.assertIn("U from the %s scores of %d rows"
                                  % (kw.get("score", "llsfe"), r.s4_info["u_rows"]), summary)
                if r.independent:
                    self.assertIn("S_4: independent coordinates", summary)
                # The refit passes: 8 by default on the estimated projected
                # route, as asked otherwise, none elsewhere.
                if kw.get("refit") is not None:
                    self.assertEqual(r.refits, kw["refit"])
                elif r.t_estimated and not r.independent:
                    self.assertEqual(r.refits, 8)
                else:
                    self.assertEqual(r.refits, 0)
                if r.refits:
                    self.assertIn("refit: %d passes" % r.refits, summary)
                    self.assertEqual(len(r.refit_error), r.refits)
                    self.assertIn("refit", r.seconds)
                    self.assertIn("kept %s%d" % ("pass " if r.refit_kept else
                                                 "the first estimate, pass ", r.refit_kept),
                                  summary)
                # The residual after the passes: reported with them only.
                if r.refits:
                    self.assertIn("top eigenvalue %.3g (" % r.residual["eig"], summary)
                    self.assertGreater(r.residual["se"], 0.0)
                else:
                    self.assertIsNone(r.residual)
                # Swap rounds: as many as asked, fewer when one keeps nothing.
                self.assertLessEqual(r.swaps, kw.get("swap", 0))
                if kw.get("swap"):
                    self.assertGreaterEqual(r.swaps, 1)
                    self.assertIn("swap: %d round" % r.swaps, summary)
                    self.assertEqual(len(r.swap_error), r.swaps)
                    self.assertIn("swap", r.seconds)
                    if r.swaps < kw["swap"]:
                        self.assertIn("no round fitted better than the passes", summary)
                # The labels' detrending: 4 by default with the exact S_4 (3 in
                # minibatch mode), 3 in the projected route's S_4 estimator,
                # else as asked.
                expect = kw.get("detrend", "auto")
                projected = r.t_estimated and not r.independent
                if expect == "auto":
                    expect = 3 if projected else 0
                    if kw.get("score") == "exact" and kw.get("route") != "quadratic":
                        expect = 3 if kw.get("mode") == "minibatch" else 4
                self.assertEqual(r.detrend, 0 if kw.get("loss") == "l2" else expect)
                if r.detrend and projected:
                    self.assertIn("the S_4 estimator detrends them by degree %d in z"
                                  % r.detrend, summary)
                elif r.detrend:
                    self.assertIn("polynomial of degree %d in z = U'x for T" % r.detrend, summary)

    def test_without_truth(self):
        r = sl.recover(self.X, self.y, 2, score="hermite", epochs=1, restarts=1)
        self.assertIsNone(r.errors)
        self.assertIsNone(r.err_max)
        self.assertTrue(np.isnan(r.trace[:, sl.TRACE_COLUMNS.index("error")]).all())


if __name__ == "__main__":
    unittest.main()
