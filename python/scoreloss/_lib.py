"""Loading libscoreloss, its function prototypes, errors and array checks.

The library is found, in this order, at the path in the environment variable
SCORELOSS_LIB, by the system's search (ctypes.util.find_library, then the
soname libscoreloss.so.0 on the library path). Every function is declared
with its argument and result types, so a wrong call fails in Python rather
than in C.

Only two C structs are mirrored here, both small and both checked against
the library's own offsets at import (sl_bind_layout): sl_dist_callbacks,
whose layout is the plug-in ABI, and sl_network. The large option and
result structs are reached through the by-name accessors of
include/scoreloss/bind.h, so they may grow without breaking this package.
"""

import ctypes
import ctypes.util
import os

import numpy as np

c_double_p = ctypes.POINTER(ctypes.c_double)
c_size_t_p = ctypes.POINTER(ctypes.c_size_t)

# sl_status codes (status.h).
SL_OK = 0
SL_EINVAL = -1
SL_EIO = -2
SL_EFORMAT = -3
SL_ENOMEM = -4
SL_ENUMERIC = -5
SL_EUNSUPPORTED = -6
SL_ECALLBACK = -7

# Capability bits of sl_dist_caps (dist.h).
CAP_SAMPLE = 1 << 0
CAP_LOGPDF = 1 << 1
CAP_GRAD = 1 << 2
CAP_HESS = 1 << 3
CAP_SCORE4 = 1 << 4
CAP_SMOOTH = 1 << 5
CAP_SCORE3 = 1 << 6

# sl_projection (sgd.h).
PROJ_NONE = 0
PROJ_SPHERE = 1
PROJ_ORTHONORMAL = 2


class Error(Exception):
    """A failure reported by libscoreloss: the library's message, with the
    status code in .status and its name in .status_name."""

    def __init__(self, message, status=None, status_name=None):
        super().__init__(message)
        self.status = status
        self.status_name = status_name


class InvalidArgument(Error, ValueError):
    """SL_EINVAL: an invalid argument, option or specification."""


class LibraryIOError(Error, OSError):
    """SL_EIO: a file could not be opened, read or written."""


class FormatError(Error, ValueError):
    """SL_EFORMAT: malformed input data."""


class OutOfMemory(Error, MemoryError):
    """SL_ENOMEM: an allocation failed or would exceed the memory limit."""


class NumericalError(Error, ArithmeticError):
    """SL_ENUMERIC: singular or non-finite numbers."""


class Unsupported(Error):
    """SL_EUNSUPPORTED: the object cannot do what was asked."""


class CallbackError(Error):
    """SL_ECALLBACK: a callback failed; a Python callback's exception is the
    __cause__."""


_ERROR_CLASS = {
    SL_EINVAL: InvalidArgument,
    SL_EIO: LibraryIOError,
    SL_EFORMAT: FormatError,
    SL_ENOMEM: OutOfMemory,
    SL_ENUMERIC: NumericalError,
    SL_EUNSUPPORTED: Unsupported,
    SL_ECALLBACK: CallbackError,
}


class ArrayError(ValueError):
    """An array argument rejected before any call into the library."""


def _find_library():
    path = os.environ.get("SCORELOSS_LIB")
    if path:
        return path
    found = ctypes.util.find_library("scoreloss")
    return found or "libscoreloss.so.0"


def _load():
    path = _find_library()
    try:
        return ctypes.CDLL(path), path
    except OSError as exc:
        raise ImportError(
            "scoreloss: cannot load the C library '%s' (%s); build it with meson "
            "and set SCORELOSS_LIB to the path of libscoreloss.so" % (path, exc)
        ) from exc


lib, lib_path = _load()


def _proto(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_c = ctypes
_status = _c.c_int
_vp = _c.c_void_p
_sz = _c.c_size_t
_str = _c.c_char_p

_proto("sl_last_error", _str)
_proto("sl_status_name", _str, _status)
_proto("sl_error_clear", None)
_proto("sl_rng_derive", _c.c_uint64, _c.c_uint64, _c.c_uint64)
_proto("gsl_rng_get", _c.c_ulong, _vp)
# distributions
_proto("sl_dist_from_spec", _status, _str, _sz, _c.POINTER(_vp))
_proto("sl_dist_from_callbacks", _status, _vp, _sz, _c.POINTER(_vp))
_proto("sl_dist_from_samples", _status, _str, _sz, _sz, c_double_p, _c.POINTER(_vp))
_proto("sl_dist_free", None, _vp)
_proto("sl_dist_dim", _sz, _vp)
_proto("sl_dist_name", _str, _vp)
_proto("sl_dist_caps", _c.c_uint, _vp)
_proto("sl_dist_sample", _status, _vp, _c.c_uint64, _sz, c_double_p)
_proto("sl_dist_log_density", _status, _vp, _sz, c_double_p, c_double_p)
_proto("sl_dist_grad_hess", _status, _vp, _sz, c_double_p, c_double_p, c_double_p)
# networks
_proto("sl_act_from_name", _status, _str, _c.POINTER(_c.c_int))
_proto("sl_network_alloc", _status, _sz, _sz, _c.c_int, _c.POINTER(_vp))
_proto("sl_network_free", None, _vp)
_proto("sl_network_set_w", _status, _vp, _str, _c.c_uint64)
_proto("sl_network_set_a", _status, _vp, _str, _c.c_uint64)
_proto("sl_network_label", _status, _vp, _sz, c_double_p, _c.c_double, _c.c_uint64, c_double_p)
_proto("sl_network_predict", _status, _vp, _sz, c_double_p, c_double_p)
# scores
_proto("sl_score_type_from_name", _status, _str, _c.POINTER(_vp))
_proto("sl_score_estimate", _status, _vp, _vp, _sz, _sz, c_double_p, _sz, c_double_p,
       _c.POINTER(_vp))
_proto("sl_scores_free", None, _vp)
_proto("sl_score_options_alloc", _status, _c.POINTER(_vp))
_proto("sl_score_options_free", None, _vp)
_proto("sl_score_options_set", _status, _vp, _str, _str)
_proto("sl_score_options_set_dist", None, _vp, _vp)
_proto("sl_scores_array", _status, _vp, _str, _c.POINTER(c_double_p), c_size_t_p)
_proto("sl_scores_number", _status, _vp, _str, c_double_p)
_proto("sl_scores_text", _str, _vp, _str)
# recovery
_proto("sl_recover_options_alloc", _status, _sz, _c.POINTER(_vp))
_proto("sl_recover_options_free", None, _vp)
_proto("sl_recover_options_set", _status, _vp, _str, _str)
_proto("sl_recover_options_set_dist", None, _vp, _vp)
_proto("sl_recover_options_set_truth", None, _vp, _vp)
_proto("sl_recover_options_landscape", _vp, _vp)
_proto("sl_recover_options_projection", _c.c_int, _vp)
_proto("sl_recover", _status, _vp, _sz, _sz, c_double_p, c_double_p, _c.POINTER(_vp))
_proto("sl_recover_result_free", None, _vp)
_proto("sl_recover_result_array", _status, _vp, _str, _c.POINTER(c_double_p), c_size_t_p)
_proto("sl_recover_result_number", _status, _vp, _str, c_double_p)
_proto("sl_recover_result_text", _str, _vp, _str)
_proto("sl_recover_result_trace", None, _vp, c_double_p)
_proto("sl_bind_layout", _c.c_long, _str, _str)


def has_symbol(name):
    """True when the loaded library exports name (parts added later, such as
    the landscape planes, are bound only when present)."""
    try:
        getattr(lib, name)
        return True
    except AttributeError:
        return False


# ---- the mirrored structs --------------------------------------------------------

SAMPLE_FN = ctypes.CFUNCTYPE(_c.c_int, _vp, _sz, _sz, _vp, c_double_p)
LOGPDF_FN = ctypes.CFUNCTYPE(_c.c_int, _vp, _sz, c_double_p, c_double_p)
GRAD_FN = ctypes.CFUNCTYPE(_c.c_int, _vp, _sz, c_double_p, c_double_p)
HESS_FN = ctypes.CFUNCTYPE(_c.c_int, _vp, _sz, c_double_p, c_double_p)


class DistCallbacks(ctypes.Structure):
    """sl_dist_callbacks (dist.h)."""

    _fields_ = [
        ("name", _str),
        ("dim", _sz),
        ("sample", SAMPLE_FN),
        ("log_density", LOGPDF_FN),
        ("gradient", GRAD_FN),
        ("hessian", HESS_FN),
        ("score3", _vp),
        ("score4", _vp),
        ("destroy", _vp),
        ("data", _vp),
        ("smooth", _c.c_int),
    ]


class Network(ctypes.Structure):
    """sl_network (network.h)."""

    _fields_ = [
        ("k", _sz),
        ("d", _sz),
        ("act", _c.c_int),
        ("W", c_double_p),
        ("a", c_double_p),
    ]


MIRRORED = {"sl_dist_callbacks": DistCallbacks, "sl_network": Network}


def layout_mismatches():
    """The differences between the ctypes mirrors and the library's layout,
    as readable lines (empty when they agree)."""
    out = []
    for cname, cls in MIRRORED.items():
        size = lib.sl_bind_layout(cname.encode(), None)
        if size != ctypes.sizeof(cls):
            out.append("%s: size %d in C, %d here" % (cname, size, ctypes.sizeof(cls)))
        for field, _ in cls._fields_:
            off = lib.sl_bind_layout(cname.encode(), field.encode())
            mine = getattr(cls, field).offset
            if off != mine:
                out.append("%s.%s: offset %d in C, %d here" % (cname, field, off, mine))
    return out


_mismatch = layout_mismatches()
if _mismatch:
    raise ImportError(
        "scoreloss: %s was built with other struct layouts than this package expects: %s"
        % (lib_path, "; ".join(_mismatch))
    )


# ---- errors ----------------------------------------------------------------------


def last_error():
    return lib.sl_last_error().decode("utf-8", "replace")


def error_for(status, cause=None):
    """The exception for a failed call, carrying the library's message."""
    name = lib.sl_status_name(status).decode()
    msg = last_error() or name
    cls = _ERROR_CLASS.get(status, Error)
    exc = cls(msg, status, name)
    if cause is not None:
        exc.__cause__ = cause
    return exc


def check(status, cause=None):
    if status != SL_OK:
        raise error_for(status, cause)


# ---- arguments -------------------------------------------------------------------


def text(value, what):
    """An option value as the text the library parses: numbers in a form
    that reads back exactly (repr of a float), strings as they are."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("%s: expected a number or a string, got %r" % (what, value))
    if isinstance(value, (int, np.integer)):
        return str(int(value)).encode()
    if isinstance(value, (float, np.floating)):
        return repr(float(value)).encode()
    if isinstance(value, str):
        return value.encode()
    raise TypeError("%s: expected a number or a string, got %s" % (what, type(value).__name__))


def seed_value(seed, what="seed"):
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError("%s: expected a non-negative integer, got %r" % (what, seed))
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError("%s: expected a non-negative integer below 2^64, got %d" % (what, seed))
    return seed


def count_value(value, what, minimum=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError("%s: expected an integer, got %r" % (what, value))
    value = int(value)
    if value < minimum:
        raise ValueError("%s: expected an integer >= %d, got %d" % (what, minimum, value))
    return value


def as_array(a, name, ndim, shape=None):
    """a as a C-contiguous float64 array with ndim dimensions, finite
    entries and, where shape gives a number, that extent: the array itself
    when it already is one (no copy), else one converted copy. Raises
    ArrayError (a ValueError) naming the argument otherwise."""
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except (TypeError, ValueError) as exc:
            raise ArrayError("%s: not an array of numbers (%s)" % (name, exc)) from None
    kind = arr.dtype.kind
    if kind not in "fiu":
        raise ArrayError(
            "%s: expected real numbers (float64, or a real integer or float type that is "
            "converted), got dtype %s" % (name, arr.dtype)
        )
    if arr.ndim != ndim:
        expect = {1: "a 1-D array (n,)", 2: "a 2-D array (rows, columns)"}.get(
            ndim, "a %d-D array" % ndim
        )
        raise ArrayError("%s: expected %s, got shape %s" % (name, expect, arr.shape))
    if shape is not None:
        for axis, (want, got) in enumerate(zip(shape, arr.shape)):
            if want is not None and want != got:
                raise ArrayError(
                    "%s: expected %s along axis %d, got shape %s" % (name, want, axis, arr.shape)
                )
    if arr.size == 0 or 0 in arr.shape:
        raise ArrayError("%s: empty array (shape %s)" % (name, arr.shape))
    if kind == "f" and arr.dtype.itemsize > 8:
        raise ArrayError("%s: dtype %s does not fit float64 exactly" % (name, arr.dtype))
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)
        first = tuple(int(i) for i in bad[0])
        value = arr[first]
        raise ArrayError(
            "%s: %d non-finite entr%s (the first, %s, at index %s); the library takes finite "
            "numbers only" % (name, len(bad), "y" if len(bad) == 1 else "ies", value, first)
        )
    return arr


def ptr(arr):
    """A double* into a C-contiguous float64 array (or NULL for None)."""
    if arr is None:
        return None
    return arr.ctypes.data_as(c_double_p)


class Handle:
    """Owns one library object and frees it once, when the last reference
    (the Python object or a NumPy view into it) goes."""

    __slots__ = ("ptr", "_free")

    def __init__(self, pointer, free):
        self.ptr = pointer
        self._free = free

    def __del__(self):
        p, self.ptr = self.ptr, None
        if p:
            self._free(p)


class _View:
    """Exposes memory owned by a Handle through the array interface, so the
    NumPy array made from it keeps the Handle alive (zero-copy results)."""

    def __init__(self, handle, address, shape):
        self._handle = handle
        self.__array_interface__ = {
            "shape": tuple(shape),
            "typestr": "<f8",
            "data": (address, False),
            "version": 3,
        }


def view(handle, address, shape):
    arr = np.asarray(_View(handle, address, shape))
    return arr
