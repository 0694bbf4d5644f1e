"""Input distributions: the library's built-ins by specification, samples
as a distribution, and distributions written as Python callables."""

import ctypes
import threading

import numpy as np

from . import _lib


class Distribution:
    """A libscoreloss input distribution (sl_dist) of dimension d.

    Build one with Distribution(spec, d) from a specification string
    ("gauss", "gmm2", "agmm", "laplace", "student:3", "logistic",
    "gauss:FILE.csv", "gmm:FILE.csv", "plugin:PATH.so[:ARGS]"), with
    Distribution.from_samples(X) for the rows of X drawn with replacement,
    or with Distribution.custom(...) from Python callables. Wherever the
    package takes a distribution, a specification string works too.
    """

    def __init__(self, spec, d):
        if not isinstance(spec, str):
            raise TypeError("spec: expected a string such as 'logistic', got %r" % (spec,))
        d = _lib.count_value(d, "d")
        out = ctypes.c_void_p()
        _lib.check(_lib.lib.sl_dist_from_spec(spec.encode(), d, ctypes.byref(out)))
        self._handle = _lib.Handle(out.value, _lib.lib.sl_dist_free)
        self._keep = None

    @classmethod
    def _adopt(cls, pointer, keep=None):
        self = cls.__new__(cls)
        self._handle = _lib.Handle(pointer, _lib.lib.sl_dist_free)
        self._keep = keep
        return self

    @classmethod
    def from_samples(cls, X, name="samples"):
        """A sample-only distribution drawing the rows of X (n x d, copied)
        with replacement, as `scoreloss sample --input` does."""
        X = _lib.as_array(X, "X", 2)
        out = ctypes.c_void_p()
        _lib.check(
            _lib.lib.sl_dist_from_samples(
                name.encode(), X.shape[0], X.shape[1], _lib.ptr(X), ctypes.byref(out)
            )
        )
        return cls._adopt(out.value)

    @classmethod
    def custom(cls, sampler, d, gradient=None, hessian=None, log_density=None, name="python",
               smooth=True):
        """A distribution defined by Python callables.

        sampler(rng, n, d) -> array (n, d): n samples, drawing only from rng,
            a numpy.random.Generator seeded from the library's random stream,
            so the samples depend on the seed alone (the library draws in
            blocks of 4096 rows, one stream per block).
        gradient(x) -> (d,): g = grad log p at one point x (d,). Optional.
        hessian(x) -> (d, d): the Hessian of log p at x. Optional, needs
            gradient.
        log_density(x) -> float: the normalised log p(x). Optional.
        smooth: log p has no kinks (Stein's identities hold).

        Without gradient and hessian the distribution is sample-only, and
        asking for its exact scores is an error, as for a plug-in without
        them. The callables are called from the library, one point at a
        time for the derivatives; an exception inside one fails the call
        with CallbackError, whose __cause__ is that exception.
        """
        d = _lib.count_value(d, "d")
        if not callable(sampler):
            raise TypeError("sampler: expected a callable sampler(rng, n, d)")
        for nm, f in (("gradient", gradient), ("hessian", hessian), ("log_density", log_density)):
            if f is not None and not callable(f):
                raise TypeError("%s: expected a callable or None" % nm)
        if hessian is not None and gradient is None:
            raise ValueError("hessian: a Hessian callback needs a gradient callback")
        state = _CallbackState(name, d)

        def c_sample(_data, dd, n, rng, X):
            def body():
                # 128 bits of the library's stream seed NumPy's generator.
                words = [int(_lib.lib.gsl_rng_get(rng)) for _ in range(4)]
                gen = np.random.default_rng(words)
                out = np.asarray(sampler(gen, int(n), int(dd)), dtype=np.float64)
                if out.shape != (n, dd):
                    raise ValueError(
                        "sampler returned shape %s, expected (%d, %d)" % (out.shape, n, dd)
                    )
                if not np.isfinite(out).all():
                    raise ValueError("sampler returned non-finite values")
                np.ctypeslib.as_array(X, shape=(n, dd))[...] = out

            return state.run("sampler", body)

        def c_vector(fn, what, shape):
            def call(_data, dd, x, out):
                def body():
                    xv = np.ctypeslib.as_array(x, shape=(dd,)).copy()
                    val = np.asarray(fn(xv), dtype=np.float64)
                    want = tuple(dd if s is None else s for s in shape)
                    if val.shape != want and not (want == () and val.size == 1):
                        raise ValueError(
                            "%s returned shape %s, expected %s" % (what, val.shape, want)
                        )
                    if not np.isfinite(val).all():
                        raise ValueError("%s returned non-finite values at x = %s" % (what, xv))
                    size = int(np.prod(want)) if want else 1
                    np.ctypeslib.as_array(out, shape=(size,))[...] = val.reshape(-1)

                return state.run(what, body)

            return call

        cb = _lib.DistCallbacks()
        cb.name = name.encode()
        cb.dim = d
        keep = [state, cb]
        f = _lib.SAMPLE_FN(c_sample)
        cb.sample = f
        keep.append(f)
        if log_density is not None:
            f = _lib.LOGPDF_FN(c_vector(log_density, "log_density", ()))
            cb.log_density = f
            keep.append(f)
        if gradient is not None:
            f = _lib.GRAD_FN(c_vector(gradient, "gradient", (None,)))
            cb.gradient = f
            keep.append(f)
        if hessian is not None:
            f = _lib.HESS_FN(c_vector(hessian, "hessian", (None, None)))
            cb.hessian = f
            keep.append(f)
        cb.smooth = 1 if smooth else 0
        out = ctypes.c_void_p()
        _lib.check(_lib.lib.sl_dist_from_callbacks(ctypes.byref(cb), d, ctypes.byref(out)))
        self = cls._adopt(out.value, keep)
        self._state = state
        return self

    # ---- properties ----------------------------------------------------------

    @property
    def _ptr(self):
        return self._handle.ptr

    @property
    def d(self):
        return int(_lib.lib.sl_dist_dim(self._ptr))

    @property
    def name(self):
        return _lib.lib.sl_dist_name(self._ptr).decode()

    @property
    def caps(self):
        """The capability names: sample, log_density, gradient, hessian,
        score3, score4, smooth."""
        bits = _lib.lib.sl_dist_caps(self._ptr)
        names = [
            (_lib.CAP_SAMPLE, "sample"),
            (_lib.CAP_LOGPDF, "log_density"),
            (_lib.CAP_GRAD, "gradient"),
            (_lib.CAP_HESS, "hessian"),
            (_lib.CAP_SCORE3, "score3"),
            (_lib.CAP_SCORE4, "score4"),
            (_lib.CAP_SMOOTH, "smooth"),
        ]
        return frozenset(n for b, n in names if bits & b)

    @property
    def has_exact_scores(self):
        return {"gradient", "hessian"} <= self.caps

    def __repr__(self):
        return "Distribution(%r, d=%d)" % (self.name, self.d)

    # ---- calls that may run Python callbacks ---------------------------------------

    def _call(self, fn, *args):
        """Runs a library call; a Python callback's exception becomes the
        cause of the CallbackError."""
        state = getattr(self, "_state", None)
        if state is not None:
            state.clear()
        status = fn(*args)
        if status != _lib.SL_OK:
            cause = state.take() if state is not None else None
            raise _lib.error_for(status, cause)

    def sample(self, n, seed=1):
        """n samples (n x d); they depend on the seed only."""
        n = _lib.count_value(n, "n")
        seed = _lib.seed_value(seed)
        X = np.empty((n, self.d))
        self._call(_lib.lib.sl_dist_sample, self._ptr, seed, n, _lib.ptr(X))
        return X

    def exact_score(self, X):
        """(g, H) at the rows of X: g = grad log p (n x d), H its Hessian
        (n x d x d)."""
        d = self.d
        X = _lib.as_array(X, "X", 2, (None, d))
        n = X.shape[0]
        G = np.empty((n, d))
        H = np.empty((n, d, d))
        self._call(_lib.lib.sl_dist_grad_hess, self._ptr, n, _lib.ptr(X), _lib.ptr(G), _lib.ptr(H))
        return G, H

    def log_density(self, X):
        d = self.d
        X = _lib.as_array(X, "X", 2, (None, d))
        out = np.empty(X.shape[0])
        self._call(_lib.lib.sl_dist_log_density, self._ptr, X.shape[0], _lib.ptr(X), _lib.ptr(out))
        return out


class _CallbackState:
    """The first exception raised by a Python callback during one library
    call (callbacks may run on the library's worker threads)."""

    def __init__(self, name, d):
        self.name = name
        self.d = d
        self._lock = threading.Lock()
        self._error = None

    def clear(self):
        with self._lock:
            self._error = None

    def take(self):
        with self._lock:
            e, self._error = self._error, None
            return e

    def run(self, what, body):
        try:
            body()
            return 0
        except BaseException as exc:  # noqa: B036 - reported through the status
            with self._lock:
                if self._error is None:
                    self._error = exc
            return 1


def as_distribution(dist, d=None, what="dist"):
    """A Distribution from a Distribution or a specification string (which
    needs d)."""
    if isinstance(dist, Distribution):
        if d is not None and dist.d != d:
            raise ValueError("%s: has dimension %d, but the data have d = %d" % (what, dist.d, d))
        return dist
    if isinstance(dist, str):
        if d is None:
            raise ValueError("%s: a specification string needs the dimension d" % what)
        return Distribution(dist, d)
    raise TypeError("%s: expected a Distribution or a specification string, got %r" % (what, dist))
