"""Losses on a plane of their parameter space, or on the angle square for
k = 2 (plane.h), as `scoreloss landscape` computes them."""

import ctypes
import math

import numpy as np

from . import _lib
from ._api import _RecoverOptions, _check_recover_args, _read_result, _truth_arrays

if not _lib.has_symbol("sl_plane_moments"):
    raise ImportError("the loaded libscoreloss has no landscape planes (plane.h)")

_vp = ctypes.c_void_p
_sz = ctypes.c_size_t
_dp = _lib.c_double_p
_proto = _lib._proto
_proto("sl_plane_moments", ctypes.c_int, _vp, _sz, _sz, _dp, _dp, ctypes.POINTER(_vp),
       ctypes.POINTER(ctypes.c_int))
_proto("sl_plane_whiten", ctypes.c_int, _vp, _dp, _dp)
_proto("sl_plane_unwhiten", ctypes.c_int, _vp, _dp, _dp)
_proto("sl_plane_landscape", ctypes.c_int, _vp, _vp, ctypes.c_int, _dp, _dp, _dp, _sz, _dp, _sz,
       _dp, _dp, _dp)
_proto("sl_plane_landscape_angles", ctypes.c_int, _vp, _vp, _sz, _dp, _sz, _dp, _dp, _dp)
_proto("sl_plane_l2", ctypes.c_int, _sz, _sz, _dp, _dp, _sz, ctypes.c_int, _dp, _dp, _dp, _sz, _dp,
       _sz, _dp, _dp, _dp)
_proto("sl_plane_l2_angles", ctypes.c_int, _vp, _sz, _dp, _dp, ctypes.c_int, _sz, _dp, _sz, _dp,
       _dp, _dp)
_proto("sl_plane_directions", ctypes.c_int, _sz, _sz, ctypes.c_int, _dp, ctypes.c_uint64,
       ctypes.c_int, _dp, _dp)
_proto("sl_moments_free", None, _vp)
_proto("sl_moments_array", ctypes.c_int, _vp, ctypes.c_char_p, ctypes.POINTER(_dp),
       ctypes.POINTER(_sz))
_proto("sl_recover_route_name", ctypes.c_char_p, ctypes.c_int)
_proto("sl_assignment", ctypes.c_int, _sz, _dp, ctypes.POINTER(_sz), _dp)
_proto("sl_rng_alloc", _vp, ctypes.c_uint64, ctypes.c_uint64)
_proto("gsl_rng_free", None, _vp)
_proto("gsl_ran_choose", ctypes.c_int, _vp, _vp, _sz, _vp, _sz, _sz)

# The seed streams `scoreloss landscape` uses (src/cli/cmd_landscape.c).
_STREAM_DIRECTIONS = 7
_STREAM_SUBSAMPLE = 8

_PROJ = {"sphere": _lib.PROJ_SPHERE, "orthonormal": _lib.PROJ_ORTHONORMAL, "none": _lib.PROJ_NONE}


class LandscapeResult:
    """What landscape() returns.

    u (nu,), v (nv,): the grid axes (radians on [0, pi) for the angles
        plane; multiples of the directions otherwise).
    loss, grad_norm (nv x nu): v the slow index, u the fast one, so
        loss[j, i] is at (u[i], v[j]) (as matplotlib's contour expects).
    marks: [(name, u, v)], the points worth marking (the truth, the centre,
        the second point).
    plane: "angles", "random" or "through"; C, D1, D2: the centre and
        directions of a plane (None for the angles).
    route, signal: where the whitened fourth moment came from and its
        signal coefficients (None for l2 on a plane).
    n_used: the rows the loss was evaluated on (the l2 subsample).
    """

    def __repr__(self):
        return "LandscapeResult(loss=%s, plane=%s, grid=%dx%d)" % (
            self.loss_name, self.plane, len(self.v), len(self.u))

    def rows(self):
        """The rows `scoreloss landscape` writes: u, v, loss, grad_norm, u
        fastest (nu nv x 4)."""
        U, V = np.meshgrid(self.u, self.v)
        return np.column_stack([U.ravel(), V.ravel(), self.loss.ravel(), self.grad_norm.ravel()])


def _assignment(cost):
    k = cost.shape[0]
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    assign = (ctypes.c_size_t * k)()
    _lib.check(_lib.lib.sl_assignment(k, _lib.ptr(cost), assign, None))
    return list(assign)


def _align(C, F, tail, flip):
    """Orders (and with flip, flips) the k items (rows) of F to match those
    of C best, by the optimal assignment on 1 - cos (|cos| with flip); tail
    is permuted along. The command line's alignment of the second point."""
    k = C.shape[0]
    cost = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            cf = cc = ff = 0.0
            for a, b in zip(C[i], F[j]):
                cf += a * b
                cc += a * a
                ff += b * b
            cosv = cf / math.sqrt(cc * ff) if cc > 0.0 and ff > 0.0 else 0.0
            cost[i, j] = 1.0 - (abs(cosv) if flip else cosv)
    assign = _assignment(cost)
    Fo, to = F.copy(), None if tail is None else tail.copy()
    out = np.empty_like(F)
    tout = None if tail is None else np.empty_like(tail)
    for i in range(k):
        j = assign[i]
        cf = 0.0
        for a, b in zip(C[i], Fo[j]):
            cf += a * b
        s = -1.0 if flip and cf < 0.0 else 1.0
        out[i] = s * Fo[j]
        if tout is not None:
            tout[i] = to[j]
    return out, tout


def _subsample(X, y, size, seed):
    """A seeded random subset of the rows, in their original order
    (gsl_ran_choose on stream 8 of the seed, as the command line)."""
    n, d = X.shape
    if n <= size:
        return X, y
    rng = _lib.lib.sl_rng_alloc(seed, _STREAM_SUBSAMPLE)
    if not rng:
        raise _lib.error_for(_lib.SL_ENOMEM)
    try:
        src = np.arange(n, dtype=np.uintp)
        pick = np.empty(size, dtype=np.uintp)
        _lib.lib.gsl_ran_choose(rng, pick.ctypes.data, size, src.ctypes.data, n,
                                src.itemsize)
    finally:
        _lib.lib.gsl_rng_free(rng)
    idx = pick.astype(np.intp)
    return np.ascontiguousarray(X[idx]), np.ascontiguousarray(y[idx])


def _moments_array(m, name, shape=None):
    data = _dp()
    length = _sz()
    _lib.check(_lib.lib.sl_moments_array(m, name.encode(), ctypes.byref(data), ctypes.byref(length)))
    if not data:
        return None
    arr = np.ctypeslib.as_array(data, shape=(length.value,)).copy()
    return arr.reshape(shape) if shape else arr


def landscape(X, y, k, loss="landscape", score="llsfe", dist=None, truth=None, act="relu",
              plane="auto", through=None, grid=201, span=None, constraint="sphere",
              subsample=4000, restarts=4, seed=1, bandwidth="auto", mu=0.5, lambda_=0.0,
              route="auto"):
    """A loss on a plane of its parameter space, as `scoreloss landscape`.

    loss: landscape, signfree or l2. plane: "angles" (k = 2: the angles of
    both whitened columns on [0, pi)^2), "random" (through the centre along
    two random orthogonal directions), "through" (through the centre, u = 1
    at the network `through` = (W, a)), or "auto" (angles for k = 2, else
    random). The centre is the truth (W, a), or without one the best of
    `restarts` recoveries with the same loss. grid: points per axis; span:
    u and v over [-span, span] (default 1 for random, 1.5 for through).
    constraint: sphere, orthonormal or none for the landscape losses;
    subsample: rows for l2 (seeded subset). score, dist, route, bandwidth,
    mu, lambda_, act, seed: as in recover(). Returns a LandscapeResult.
    """
    X, y, k = _check_recover_args(X, y, k)
    n, d = X.shape
    losses = ("landscape", "signfree", "l2")
    if loss not in losses:
        raise ValueError("loss: unknown loss %r (expected landscape, signfree or l2)" % (loss,))
    grid = _lib.count_value(grid, "grid", 3)
    if grid > 2001:
        raise ValueError("grid: expected an integer from 3 to 2001, got %d" % grid)
    subsample = _lib.count_value(subsample, "subsample", 10)
    restarts = _lib.count_value(restarts, "restarts")
    seed = _lib.seed_value(seed)
    if constraint not in _PROJ:
        raise ValueError("constraint: unknown constraint %r (expected sphere, orthonormal or none)"
                         % (constraint,))
    proj = _PROJ[constraint]
    if plane == "auto":
        plane = "angles" if k == 2 else "random"
    if plane not in ("angles", "random", "through"):
        raise ValueError("plane: unknown plane %r (expected angles, random, through or auto)"
                         % (plane,))
    if plane == "angles" and k != 2:
        raise ValueError("plane: angles needs k = 2 (got %d)" % k)
    if plane == "through" and through is None:
        raise ValueError("plane through needs `through`, the second network (W, a)")
    if plane == "angles" and span is not None:
        raise ValueError("span: the angles run over [0, pi): leave it out")
    if span is None:
        span = 1.5 if plane == "through" else 1.0
    span = float(span)
    if not (0.0 < span <= 1e6):
        raise ValueError("span: expected a number > 0, got %r" % span)
    truth = _truth_arrays(truth, d)
    if truth is not None and truth[0].shape[0] != k:
        raise ValueError("truth has %d units; k = %d" % (truth[0].shape[0], k))
    second = _truth_arrays(through, d) if through is not None else None
    if second is not None and second[0].shape[0] != k:
        raise ValueError("through has %d units; k = %d" % (second[0].shape[0], k))
    need_moments = loss != "l2" or plane == "angles"
    if score == "exact" and dist is None and need_moments:
        raise ValueError("score exact needs dist, the input distribution")

    options = dict(seed=seed, mu=mu, lambda_=lambda_, bandwidth=bandwidth, route=route,
                   constraint="orthonormal" if constraint == "none" else constraint)
    opt = _RecoverOptions(k, "landscape", score, act, options, dist if need_moments else None,
                          None, d)
    act_code = ctypes.c_int()
    _lib.check(_lib.lib.sl_act_from_name(act.encode(), ctypes.byref(act_code)))
    L = _lib.lib
    res = LandscapeResult()
    res.loss_name, res.plane = loss, plane
    res.route = res.signal = None
    res.C = res.D1 = res.D2 = None
    mhandle = None
    if need_moments:
        m = _vp()
        rc = ctypes.c_int()
        st = L.sl_plane_moments(opt.ptr, n, d, _lib.ptr(X), _lib.ptr(y), ctypes.byref(m),
                                ctypes.byref(rc))
        if st != _lib.SL_OK:
            state = getattr(opt.dist, "_state", None) if opt.dist is not None else None
            raise _lib.error_for(st, state.take() if state is not None else None)
        mhandle = _lib.Handle(m.value, L.sl_moments_free)
        res.route = L.sl_recover_route_name(rc.value).decode()
        res.signal = _moments_array(mhandle.ptr, "signal")
    Xs, ys = (_subsample(X, y, subsample, seed) if loss == "l2" else (X, y))
    res.n_used = Xs.shape[0] if loss == "l2" else n

    G = grid
    if plane == "angles":
        u = np.pi * np.arange(G) / G
    else:
        u = -span + 2.0 * span * np.arange(G) / (G - 1)
    v = u.copy()
    f = np.empty((G, G))
    g = np.empty((G, G))
    # The landscape options as the recover options set them, with the kind
    # of this loss (sl_recover_options_set sets it from loss).
    opt.set("loss", "signfree" if loss == "signfree" else "landscape")
    lo = L.sl_recover_options_landscape(opt.ptr)
    marks = []
    if plane == "angles":
        if loss == "l2":
            st = L.sl_plane_l2_angles(mhandle.ptr, Xs.shape[0], _lib.ptr(Xs), _lib.ptr(ys),
                                      act_code.value, G, _lib.ptr(u), G, _lib.ptr(v),
                                      _lib.ptr(f), _lib.ptr(g))
        else:
            st = L.sl_plane_landscape_angles(mhandle.ptr, lo, G, _lib.ptr(u), G, _lib.ptr(v),
                                             _lib.ptr(f), _lib.ptr(g))
        _lib.check(st)
        if truth is not None:
            B = np.empty(4)
            _lib.check(L.sl_plane_whiten(mhandle.ptr, _lib.ptr(truth[0]), _lib.ptr(B)))
            t = []
            for c in range(2):
                tc = math.atan2(B[2 + c], B[c])
                if tc < 0.0:
                    tc += math.pi
                if tc >= math.pi:
                    tc -= math.pi
                t.append(tc)
            marks = [("truth", t[0], t[1]), ("truth", t[1], t[0])]
    else:
        npar = k * d + k if loss == "l2" else k * k
        C = np.empty(npar)
        if truth is not None:
            W, a = truth
            what = "truth"
        else:
            ropt = _RecoverOptions(k, loss, score, act,
                                   dict(options, holdout=0.0, restarts=restarts),
                                   dist if loss != "l2" else None, None, d)
            out = _vp()
            _lib.check(L.sl_recover(ropt.ptr, n, d, _lib.ptr(X), _lib.ptr(y), ctypes.byref(out)))
            h = _lib.Handle(out.value, L.sl_recover_result_free)
            best = _read_result(h.ptr)
            W, a = best.W_hat, best.a_hat
            what = "best"
        if loss == "l2":
            C[: k * d] = W.ravel()
            C[k * d:] = a
        else:
            _lib.check(L.sl_plane_whiten(mhandle.ptr, _lib.ptr(np.ascontiguousarray(W)),
                                         _lib.ptr(C)))
        pproj = _lib.PROJ_NONE if loss == "l2" else proj
        D1 = np.zeros(npar)
        D2 = np.empty(npar)
        fixed = 0
        if plane == "through":
            if loss == "l2":
                F, tail = _align(C[: k * d].reshape(k, d), second[0], second[1], False)
                D1[: k * d] = F.ravel()
                D1[k * d:] = tail
            else:
                B2 = np.empty(k * k)
                _lib.check(L.sl_plane_whiten(mhandle.ptr, _lib.ptr(second[0]), _lib.ptr(B2)))
                F, _ = _align(C.reshape(k, k).T, B2.reshape(k, k).T, None, True)
                D1[:] = F.T.ravel()
            D1 -= C
            fixed = 1
        _lib.check(L.sl_plane_directions(npar, k, pproj, _lib.ptr(C),
                                         L.sl_rng_derive(seed, _STREAM_DIRECTIONS), fixed,
                                         _lib.ptr(D1), _lib.ptr(D2)))
        if loss == "l2":
            st = L.sl_plane_l2(Xs.shape[0], d, _lib.ptr(Xs), _lib.ptr(ys), k, act_code.value,
                               _lib.ptr(C), _lib.ptr(D1), _lib.ptr(D2), G, _lib.ptr(u), G,
                               _lib.ptr(v), _lib.ptr(f), _lib.ptr(g))
        else:
            st = L.sl_plane_landscape(mhandle.ptr, lo, pproj, _lib.ptr(C), _lib.ptr(D1),
                                      _lib.ptr(D2), G, _lib.ptr(u), G, _lib.ptr(v), _lib.ptr(f),
                                      _lib.ptr(g))
        _lib.check(st)
        marks = [(what, 0.0, 0.0)]
        if plane == "through":
            marks.append(("second", 1.0, 0.0))
        res.C, res.D1, res.D2 = C, D1, D2
    bad = ~(np.isfinite(f) & np.isfinite(g))
    if bad.any():
        j, i = np.argwhere(bad)[0]
        raise _lib.NumericalError(
            "the %s loss has no value at (u, v) = (%g, %g) (the constraint cannot take that "
            "point; try another constraint or seed)" % (loss, u[i], v[j]),
            _lib.SL_ENUMERIC, "numerical failure")
    res.u, res.v, res.loss, res.grad_norm, res.marks = u, v, f, g, marks
    return res


__all__ = ["landscape", "LandscapeResult"]
