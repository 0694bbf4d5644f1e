"""Sampling, planted networks, scores and recovery over libscoreloss.

Each function does what the command-line subcommand of the same name does,
with the same defaults and the same random streams, so that the same seed
and data give the same numbers as `scoreloss sample | plant | score |
recover`.
"""

import ctypes

import numpy as np

from . import _lib
from ._dist import Distribution, as_distribution

# The streams of the seed that `scoreloss plant` draws W, a and the noise
# from (src/cli/cmd_plant.c): changing how one is drawn leaves the others.
_STREAM_W = 1
_STREAM_A = 2
_STREAM_NOISE = 3

ACTIVATIONS = ("relu", "sigmoid", "tanh", "erf", "softplus", "quadratic", "cubic")


def sample(dist, n, d=None, seed=1):
    """n samples of a d-dimensional distribution (n x d float64), as
    `scoreloss sample --dist SPEC --d D --n N --seed S`. dist is a
    specification string (then d is required) or a Distribution."""
    if isinstance(dist, str) and d is None:
        raise ValueError("d: the dimension is required with a specification string")
    if d is not None:
        d = _lib.count_value(d, "d")
    n = _lib.count_value(n, "n")
    seed = _lib.seed_value(seed)
    return as_distribution(dist, d).sample(n, seed)


def exact_score(dist, X):
    """The exact scores (g, H) of a distribution at the rows of X:
    g = grad log p (n x d) and H the Hessian of log p (n x d x d), as
    `scoreloss score --method exact --dist SPEC`."""
    X = _lib.as_array(X, "X", 2)
    return as_distribution(dist, X.shape[1]).exact_score(X)


def _act_code(act):
    if not isinstance(act, str):
        raise TypeError("act: expected one of %s" % ", ".join(ACTIVATIONS))
    code = ctypes.c_int()
    _lib.check(_lib.lib.sl_act_from_name(act.encode(), ctypes.byref(code)))
    return code.value


class _Net:
    """An sl_network owned from Python; W and a are NumPy views into it."""

    def __init__(self, k, d, act):
        out = ctypes.c_void_p()
        _lib.check(_lib.lib.sl_network_alloc(k, d, _act_code(act), ctypes.byref(out)))
        self.handle = _lib.Handle(out.value, _lib.lib.sl_network_free)
        s = ctypes.cast(out, ctypes.POINTER(_lib.Network)).contents
        self.k, self.d = k, d
        self.W = np.ctypeslib.as_array(s.W, shape=(k, d))
        self.a = np.ctypeslib.as_array(s.a, shape=(k,))

    @property
    def ptr(self):
        return self.handle.ptr


def _network(W, a, act, d, what="truth"):
    """An sl_network with rows W (k x d) and second layer a (k), copied."""
    W = _lib.as_array(W, what + " W", 2, (None, d))
    k = W.shape[0]
    a = _lib.as_array(a, what + " a", 1, (k,))
    net = _Net(k, d, act)
    net.W[...] = W
    net.a[...] = a
    return net


def plant(X, k=None, act="relu", w="orthonormal", a="ones", noise=0.0, seed=1):
    """Labels the rows of X with a planted network
    y = sum_i a_i act(w_i . x) + noise, as `scoreloss plant`.

    w: "orthonormal", "identity", "random", "random:COND", or a k x d array
       (then k may be left out);
    a: "ones", "positive", a list of k values, or an array;
    noise: the standard deviation of the Gaussian label noise.
    W, a and the noise come from separate streams of seed, as on the command
    line (a given W and a are `--truth-in`). Returns (y, W, a) as arrays.
    """
    X = _lib.as_array(X, "X", 2)
    n, d = X.shape
    seed = _lib.seed_value(seed)
    if isinstance(noise, (bool, np.bool_)) or not isinstance(noise, (int, float, np.number)):
        raise TypeError("noise: expected a number >= 0, got %r" % (noise,))
    noise = float(noise)
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError("noise: expected a finite number >= 0, got %r" % noise)
    W_given = not isinstance(w, str)
    if W_given:
        Wa = _lib.as_array(w, "w", 2, (None, d))
        if k is not None and _lib.count_value(k, "k") != Wa.shape[0]:
            raise ValueError("k = %d differs from the %d rows of w" % (k, Wa.shape[0]))
        k = Wa.shape[0]
    if k is None:
        raise ValueError("k: the number of hidden units is required unless w is an array")
    k = _lib.count_value(k, "k")
    if k > d:
        raise ValueError("k = %d exceeds d = %d, the number of columns of X (need k <= d)" % (k, d))
    a_spec = None
    if isinstance(a, str):
        a_spec = a
    else:
        a_arr = _lib.as_array(a, "a", 1, (k,))
    net = _Net(k, d, act)
    if W_given:
        net.W[...] = Wa
    else:
        _lib.check(
            _lib.lib.sl_network_set_w(net.ptr, w.encode(), _lib.lib.sl_rng_derive(seed, _STREAM_W))
        )
    if a_spec is not None:
        _lib.check(
            _lib.lib.sl_network_set_a(
                net.ptr, a_spec.encode(), _lib.lib.sl_rng_derive(seed, _STREAM_A)
            )
        )
    else:
        net.a[...] = a_arr
    y = np.empty(n)
    _lib.check(
        _lib.lib.sl_network_label(
            net.ptr, n, _lib.ptr(X), noise, _lib.lib.sl_rng_derive(seed, _STREAM_NOISE), _lib.ptr(y)
        )
    )
    return y, net.W.copy(), net.a.copy()


def predict(X, W, a, act="relu"):
    """The noise-free outputs sum_i a_i act(w_i . x) at the rows of X."""
    X = _lib.as_array(X, "X", 2)
    net = _network(W, a, act, X.shape[1], "network")
    y = np.empty(X.shape[0])
    _lib.check(_lib.lib.sl_network_predict(net.ptr, X.shape[0], _lib.ptr(X), _lib.ptr(y)))
    return y


# ---- scores ----------------------------------------------------------------------


class Scores(tuple):
    """(g, H) from score(): g (nq x d), H (nq x d x d), views into the
    library's result (no copy). Besides unpacking as a pair it carries what
    the estimator chose: method, bandwidth (the global one, or the median
    of the per-point ones for knn:K; 0 when none applies), h (per-point
    bandwidths or None), strategy, regularised (points whose local fit
    needed regularisation)."""

    def __new__(cls, g, H, **info):
        self = super().__new__(cls, (g, H))
        self.__dict__.update(info)
        return self

    @property
    def g(self):
        return self[0]

    @property
    def H(self):
        return self[1]


def _options_set(setter, handle, name, value):
    _lib.check(setter(handle, name.encode(), _lib.text(value, name)))


def _score_type(method):
    if not isinstance(method, str):
        raise TypeError("method: expected llsfe, kde, gauss, hermite or exact")
    out = ctypes.c_void_p()
    if _lib.lib.sl_score_type_from_name(method.encode(), ctypes.byref(out)) != _lib.SL_OK:
        raise _lib.InvalidArgument(
            "unknown method '%s' (available: llsfe, kde, gauss, hermite, exact)" % method,
            _lib.SL_EINVAL,
            "invalid argument",
        )
    return out.value


def score(X, method="llsfe", bandwidth="auto", bw_const=None, at=None, strategy="auto",
          cutoff=5.0, knn_eps=0.0, shrink=None, seed=1, dist=None):
    """Score functions g = grad log p and H = Hessian of log p estimated from
    the samples X (n x d), at the rows of `at` or else at the samples (each
    left out of its own estimate), as `scoreloss score`.

    method: llsfe, kde, gauss, hermite or exact (exact needs dist);
    bandwidth: "auto", a fixed h > 0 (a number), "knn:K" or "const:C";
    bw_const: C for h = C n^(-1/(d+6)) (instead of bandwidth);
    strategy, cutoff, knn_eps, shrink, seed: as --strategy, --cutoff,
    --knn-eps, --shrink (None: the library's default), --seed.
    Returns Scores, which unpacks as (g, H).
    """
    X = _lib.as_array(X, "X", 2)
    n, d = X.shape
    Q = None if at is None else _lib.as_array(at, "at", 2, (None, d))
    stype = _score_type(method)
    if bw_const is not None and not (isinstance(bandwidth, str) and bandwidth == "auto"):
        raise ValueError("bw_const conflicts with bandwidth (give one of them; bw_const=C is "
                         "bandwidth='const:C')")
    seed = _lib.seed_value(seed)
    if method == "exact":
        if dist is None:
            raise ValueError("method exact needs dist, the distribution with exact scores")
    dobj = as_distribution(dist, d) if dist is not None else None
    opt = ctypes.c_void_p()
    _lib.check(_lib.lib.sl_score_options_alloc(ctypes.byref(opt)))
    opt_handle = _lib.Handle(opt.value, _lib.lib.sl_score_options_free)
    setter = _lib.lib.sl_score_options_set
    if bw_const is not None:
        _options_set(setter, opt_handle.ptr, "bw-const", bw_const)
    else:
        _options_set(setter, opt_handle.ptr, "bandwidth", bandwidth)
    _options_set(setter, opt_handle.ptr, "strategy", strategy)
    _options_set(setter, opt_handle.ptr, "cutoff", cutoff)
    _options_set(setter, opt_handle.ptr, "knn-eps", knn_eps)
    if shrink is not None:
        _options_set(setter, opt_handle.ptr, "shrink", shrink)
    _options_set(setter, opt_handle.ptr, "seed", seed)
    if dobj is not None:
        _lib.lib.sl_score_options_set_dist(opt_handle.ptr, dobj._ptr)
    nq = n if Q is None else Q.shape[0]
    out = ctypes.c_void_p()
    state = getattr(dobj, "_state", None) if dobj is not None else None
    if state is not None:
        state.clear()
    st = _lib.lib.sl_score_estimate(
        stype, opt_handle.ptr, n, d, _lib.ptr(X), nq, _lib.ptr(Q), ctypes.byref(out)
    )
    if st != _lib.SL_OK:
        raise _lib.error_for(st, state.take() if state is not None else None)
    handle = _lib.Handle(out.value, _lib.lib.sl_scores_free)

    def array(name, shape):
        data = _lib.c_double_p()
        length = ctypes.c_size_t()
        _lib.check(
            _lib.lib.sl_scores_array(handle.ptr, name.encode(), ctypes.byref(data),
                                     ctypes.byref(length))
        )
        if not data:
            return None
        assert length.value == int(np.prod(shape))
        return _lib.view(handle, ctypes.cast(data, ctypes.c_void_p).value, shape)

    def number(name):
        v = ctypes.c_double()
        _lib.check(_lib.lib.sl_scores_number(handle.ptr, name.encode(), ctypes.byref(v)))
        return v.value

    g = array("G", (nq, d))
    H = array("H", (nq, d, d))
    return Scores(
        g,
        H,
        method=_lib.lib.sl_scores_text(handle.ptr, b"method").decode(),
        strategy=_lib.lib.sl_scores_text(handle.ptr, b"strategy").decode(),
        bandwidth=number("bandwidth"),
        regularised=int(number("regularised")),
        h=array("h", (nq,)),
    )


def upper_triangle(g, H):
    """The columns `scoreloss score` writes: g_1..g_d, then h_i_j for i <= j
    row by row (n x (d + d (d + 1) / 2))."""
    d = g.shape[1]
    iu = np.triu_indices(d)
    return np.hstack([g, H[:, iu[0], iu[1]]])


# ---- recovery ---------------------------------------------------------------------

# Keyword arguments of recover() that map to library option names.
_RECOVER_OPTIONS = (
    "route", "mode", "mu", "lambda", "constraint", "lr", "batch", "epochs", "restarts",
    "seed", "bandwidth", "holdout", "s4", "s4_bandwidth", "s4_reference", "s4_thin", "u_rows",
    "assume",
    "detrend", "refine", "refit", "refit_scale", "refit_rows", "swap", "tensor_steps", "bw_const",
    "strategy", "cutoff", "knn_eps", "shrink", "shrink_min",
)

TRACE_COLUMNS = ("restart", "step", "epoch", "loss", "grad_norm", "error", "seconds", "full")


class RecoverResult:
    """What recover() returns (arrays are copies; nothing refers to C memory).

    W_hat (k x d), a_hat (k): the recovered network (unit rows with fitted
        signs for the landscape losses; the trained (W, a) for l2).
    errors: dict err_max, err_min, distinct, worst_angle against the truth
        (None without one); err_max etc. are also attributes.
    restart_error (restarts) and restart_W (restarts x k x d): every
        restart's end point and its err_max (None without a truth).
    restart_loss, final_loss, best_restart (0-based), steps, stop_reason.
    m2_evals, signal, found_signal, found_signal_se, truth_signal, sign,
        route, tensor_mode (None / 0 for l2 where absent).
    truth_coef: each true ReLU unit's whitened fourth-order coefficient in
        the population, from the exact marginals of a Gaussian or Gaussian
        mixture dist (score="exact"); None otherwise.
    holdout_error, train_error: relative prediction errors (NaN when none).
    trace: the optimiser's trace, ntrace x 8 with columns TRACE_COLUMNS
        (restart, step, epoch, loss, grad_norm, error, seconds, full).
    warnings: list of strings. seconds: dict scores, moments, sgd,
        second_layer (and s4, part of moments, for an estimated S_4).
    detrend: the degree of the polynomial in z = U'x the labels lost before
        T (0: none; 4 by default with exact scores, its fourth derivative
        added back to T). detrend_m2: the same in x before M2 (2: the
        quadratic, its Hessian added back). refined: whether the directions
        were refined by a least-squares fit of the unwhitened T (refine=
        "auto" | "cp" | "none"). refits: the passes that estimated M2 and T
        again with the directions found as control variates (refit= "auto" |
        N; refit_scale= their smoothing, default 0.2; refit_rows= the rows
        of their T, default 200000), refit_error: err_max after each (None
        without a truth), refit_kept: the pass whose directions were kept
        (0: the first estimate), the one whose second layer fits the fitted
        rows best. swaps: the swap rounds run after the passes (swap= R,
        default 0), swap_error: err_max of the kept directions after each
        (None without a truth), swap_kept: the last round that kept
        directions (0: none). residual (None without passes): at the
        directions kept, the top eigenvalue by |value| of the M2 of the
        labels minus their fit on x and those directions' smoothed ReLUs
        ("eig": the signal they leave), its standard error ("se") and M2's
        k-th eigenvalue ("scale"), as recover's "residual:" line.
    t_estimated, independent, s4_estimator, s4_info: whether T came from
        estimated third and fourth log-derivatives, by the projected route's
        estimator (s4_info: its bandwidth, reference samples, mean
        neighbours, regularised points, u_rows) or the factorised fit.
    """

    trace_columns = TRACE_COLUMNS

    def __repr__(self):
        err = "err_max=%.4g, " % self.err_max if self.errors else ""
        return "RecoverResult(k=%d, d=%d, %sfinal_loss=%.6g, route=%s, warnings=%d)" % (
            self.k, self.d, err, self.final_loss, self.route, len(self.warnings))


def _read_result(ptr):
    res = RecoverResult()
    L = _lib.lib

    def number(name):
        v = ctypes.c_double()
        _lib.check(L.sl_recover_result_number(ptr, name.encode(), ctypes.byref(v)))
        return v.value

    def array(name, shape=None):
        data = _lib.c_double_p()
        length = ctypes.c_size_t()
        _lib.check(
            L.sl_recover_result_array(ptr, name.encode(), ctypes.byref(data), ctypes.byref(length))
        )
        if not data:
            return None
        arr = np.ctypeslib.as_array(data, shape=(length.value,)).copy()
        return arr.reshape(shape) if shape is not None else arr

    k, d = int(number("k")), int(number("d"))
    restarts = int(number("restarts"))
    res.k, res.d = k, d
    res.n_train, res.n_holdout = int(number("n_train")), int(number("n_holdout"))
    res.W_hat = array("W_hat", (k, d))
    res.a_hat = array("a_hat")
    if number("have_error"):
        res.errors = {
            "err_max": number("err_max"),
            "err_min": number("err_min"),
            "distinct": int(number("distinct")),
            "worst_angle": number("worst_angle"),
        }
    else:
        res.errors = None
    for key in ("err_max", "err_min", "distinct", "worst_angle"):
        setattr(res, key, res.errors[key] if res.errors else None)
    res.restart_error = array("restart_error")
    res.restart_W = array("restart_W", (restarts, k, d))
    res.restart_loss = array("restart_loss")
    res.m2_evals = array("m2_evals")
    res.signal = array("signal")
    res.found_signal = array("found_signal")
    res.found_signal_se = array("found_signal_se")
    res.truth_signal = array("truth_signal")
    res.truth_coef = array("truth_coef")
    res.sign = int(number("sign"))
    res.tensor_mode = bool(number("tensor_mode"))
    res.route = L.sl_recover_result_text(ptr, b"route").decode()
    res.stop_reason = L.sl_recover_result_text(ptr, b"stop_reason").decode()
    warnings = L.sl_recover_result_text(ptr, b"warnings").decode()
    res.warnings = [w for w in warnings.split("\n") if w]
    res.holdout_error = number("holdout_error")
    res.train_error = number("train_error")
    res.final_loss = number("final_loss")
    res.steps = int(number("steps"))
    res.restarts = restarts
    res.best_restart = int(number("best_restart"))
    ntrace = int(number("ntrace"))
    res.trace = np.empty((ntrace, len(TRACE_COLUMNS)))
    if ntrace:
        L.sl_recover_result_trace(ptr, _lib.ptr(res.trace))
    res.seconds = {
        "scores": number("seconds_scores"),
        "moments": number("seconds_moments"),
        "sgd": number("seconds_sgd"),
        "second_layer": number("seconds_second_layer"),
    }
    # Where an estimated S_4 came from (the projected route with estimated
    # scores, or the factorised fit of independent coordinates).
    res.detrend = int(number("detrend"))
    res.detrend_m2 = int(number("detrend_m2"))
    res.refined = bool(number("refined"))
    res.refits = int(number("refits"))
    res.refit_kept = int(number("refit_kept"))
    res.refit_error = array("refit_error")
    res.swaps = int(number("swaps"))
    res.swap_kept = int(number("swap_kept"))
    res.swap_error = array("swap_error")
    res.residual = None
    if res.refits:
        res.residual = {"eig": number("residual_eig"), "se": number("residual_se"),
                        "scale": number("residual_scale")}
    res.t_estimated = bool(number("t_estimated"))
    res.independent = bool(number("independent"))
    res.s4_estimator = L.sl_recover_result_text(ptr, b"s4_estimator").decode() or None
    res.s4_info = None
    if res.t_estimated and not res.independent:
        res.seconds["s4"] = number("seconds_s4")
        res.seconds["refit"] = number("seconds_refit")
        if res.swaps:
            res.seconds["swap"] = number("seconds_swap")  # part of refit
        res.s4_info = {
            "bandwidth": number("s4_h"),
            "reference": int(number("s4_nref")),
            "mean_neighbours": number("s4_mean_neighbours"),
            "mean_effective": number("s4_mean_effective"),
            "regularised": int(number("s4_regularised")),
            "u_rows": int(number("u_rows")),
        }
    return res


def _truth_arrays(truth, d):
    """truth: (W, a) or an object with attributes W and a; checked arrays."""
    if truth is None:
        return None
    if hasattr(truth, "W") and hasattr(truth, "a"):
        W, a = truth.W, truth.a
    else:
        try:
            W, a = truth
        except (TypeError, ValueError):
            raise TypeError("truth: expected (W, a) or an object with attributes W and a") from None
    W = _lib.as_array(W, "truth W", 2, (None, d))
    a = _lib.as_array(a, "truth a", 1, (W.shape[0],))
    return W, a


class _RecoverOptions:
    """sl_recover_options on the heap, set by name (bind.h), with the
    objects it borrows kept alive beside it."""

    def __init__(self, k, loss, score, act, options, dist, truth, d):
        out = ctypes.c_void_p()
        _lib.check(_lib.lib.sl_recover_options_alloc(k, ctypes.byref(out)))
        self.handle = _lib.Handle(out.value, _lib.lib.sl_recover_options_free)
        self.set("loss", loss)
        self.set("score", score)
        self.set("act", act)
        for key, value in options.items():
            if key == "lambda_":
                key = "lambda"
            if key not in _RECOVER_OPTIONS:
                raise TypeError(
                    "unexpected option %r (expected one of %s)" % (key, ", ".join(_RECOVER_OPTIONS))
                )
            if value is None:
                continue
            self.set(key.replace("_", "-"), value)
        self.dist = None
        if dist is not None:
            self.dist = as_distribution(dist, d)
            _lib.lib.sl_recover_options_set_dist(self.ptr, self.dist._ptr)
        self.truth = None if truth is None else _network(truth[0], truth[1], act, d)
        if self.truth is not None:
            _lib.lib.sl_recover_options_set_truth(self.ptr, self.truth.ptr)

    @property
    def ptr(self):
        return self.handle.ptr

    def set(self, name, value):
        _options_set(_lib.lib.sl_recover_options_set, self.ptr, name, value)


def _check_recover_args(X, y, k):
    X = _lib.as_array(X, "X", 2)
    n, d = X.shape
    y = _lib.as_array(y, "y", 1, (n,))
    k = _lib.count_value(k, "k")
    if k > d:
        raise ValueError("k = %d exceeds d = %d, the number of columns of X (need k <= d)" % (k, d))
    return X, y, k


_SCORE_ONLY = ("route", "mode", "mu", "lambda", "lambda_", "constraint", "bandwidth", "bw_const",
               "strategy", "cutoff", "knn_eps", "shrink", "shrink_min", "tensor_steps", "s4",
               "s4_bandwidth", "s4_reference", "s4_thin", "u_rows", "assume", "detrend", "refine",
               "refit", "refit_scale", "refit_rows", "swap")
_KERNEL_ONLY = ("bandwidth", "bw_const", "strategy", "cutoff", "knn_eps", "shrink")
_S4_ONLY = ("s4", "s4_bandwidth", "s4_reference", "s4_thin", "u_rows", "refit", "refit_scale",
            "refit_rows", "shrink_min", "swap")


def _refuse_ignored(loss, score, dist, options):
    """Options that would be silently ignored are refused, as on the command
    line."""
    given = [key for key, value in options.items() if value is not None]
    if loss == "l2":
        unused = [key for key in given if key in _SCORE_ONLY]
        if score != "llsfe":
            unused.insert(0, "score")
        if dist is not None:
            unused.insert(0, "dist")
        if unused:
            raise ValueError("%s: the l2 loss uses no scores or moments: leave it out"
                             % ", ".join(unused))
        return
    if score == "exact" and dist is None:
        raise ValueError("score exact needs dist, the input distribution")
    if score != "exact" and dist is not None:
        raise ValueError("dist is used only with score='exact'")
    exact = score == "exact"
    route = options.get("route") or "auto"
    independent = options.get("assume") == "independent"
    if not exact and not independent and route == "full":
        raise ValueError("route full needs score='exact' or assume='independent' (estimated "
                         "scores take the projected or the quadratic route)")
    if independent and (exact or route == "projected"):
        raise ValueError("assume='independent' applies to estimated scores on route full or "
                         "quadratic (the factorised fit replaces the score estimator)")
    s4 = [key for key in given if key in _S4_ONLY]
    if s4 and (exact or independent or route == "quadratic"):
        raise ValueError("%s: applies to estimated scores on the projected route only"
                         % ", ".join(s4))
    kernel = [key for key in given if key in _KERNEL_ONLY]
    if kernel and score not in ("llsfe", "kde"):
        raise ValueError("%s: applies to score llsfe and kde only" % ", ".join(kernel))


def recover(X, y, k, loss="landscape", score="llsfe", dist=None, truth=None, act="relu",
            **options):
    """Recovers a planted network from data (X: n x d, y: n), as
    `scoreloss recover`.

    loss: landscape, signfree or l2; score: llsfe, kde, gauss, hermite or
    exact (exact needs dist, a Distribution or a specification string);
    truth: (W, a) of the planted network, for the errors and the traced
    err_max; act: the activation. Further options, with the command line's
    meanings and defaults: route, mode, mu, lambda_ (or lambda via **),
    constraint, lr, batch, epochs ("auto" or a count), restarts, seed,
    bandwidth, holdout, s4 (cumulant, kde, quadratic), s4_bandwidth,
    s4_reference, s4_thin (t, gauss, zero), u_rows, assume ("independent"), detrend, refine, refit
    ("auto" or a count), refit_scale, refit_rows, swap, and tensor_steps,
    bw_const, strategy, cutoff, knn_eps, shrink, shrink_min. Returns a
    RecoverResult.
    """
    X, y, k = _check_recover_args(X, y, k)
    d = X.shape[1]
    _refuse_ignored(loss, score, dist, options)
    truth = _truth_arrays(truth, d)
    opt = _RecoverOptions(k, loss, score, act, options, dist, truth, d)
    out = ctypes.c_void_p()
    state = getattr(opt.dist, "_state", None) if opt.dist is not None else None
    if state is not None:
        state.clear()
    st = _lib.lib.sl_recover(opt.ptr, X.shape[0], d, _lib.ptr(X), _lib.ptr(y), ctypes.byref(out))
    if st != _lib.SL_OK:
        raise _lib.error_for(st, state.take() if state is not None else None)
    handle = _lib.Handle(out.value, _lib.lib.sl_recover_result_free)
    return _read_result(handle.ptr)


__all__ = [
    "Distribution", "sample", "exact_score", "plant", "predict", "score", "Scores",
    "upper_triangle", "recover", "RecoverResult", "TRACE_COLUMNS", "ACTIVATIONS",
]
