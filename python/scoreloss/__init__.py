"""scoreloss: landscape-designed losses with estimated score functions, from
Python.

A pure-Python interface (ctypes) over the C library libscoreloss: NumPy
arrays in and out, the same numbers as the `scoreloss` command line for the
same seed and data. The library is found through the environment variable
SCORELOSS_LIB (the path of libscoreloss.so), else on the library path.

    import scoreloss as sl
    X = sl.sample("logistic", n=20000, d=6, seed=1)
    y, W, a = sl.plant(X, k=2, noise=0.05, seed=1)
    g, H = sl.score(X)                      # llsfe, automatic bandwidth
    r = sl.recover(X, y, k=2, truth=(W, a))
    print(r.err_max, r.W_hat)
"""

from ._lib import (
    ArrayError,
    CallbackError,
    Error,
    FormatError,
    InvalidArgument,
    LibraryIOError,
    NumericalError,
    OutOfMemory,
    Unsupported,
    lib_path,
)
from ._dist import Distribution
from ._api import (
    ACTIVATIONS,
    TRACE_COLUMNS,
    RecoverResult,
    Scores,
    exact_score,
    plant,
    predict,
    recover,
    sample,
    score,
    upper_triangle,
)

__all__ = [
    "ACTIVATIONS",
    "TRACE_COLUMNS",
    "ArrayError",
    "CallbackError",
    "Distribution",
    "Error",
    "FormatError",
    "InvalidArgument",
    "LibraryIOError",
    "NumericalError",
    "OutOfMemory",
    "RecoverResult",
    "Scores",
    "Unsupported",
    "exact_score",
    "lib_path",
    "plant",
    "predict",
    "recover",
    "sample",
    "score",
    "upper_triangle",
]

try:
    from ._landscape import LandscapeResult, landscape  # noqa: F401  (needs plane.h)

    __all__ += ["LandscapeResult", "landscape"]
except ImportError:  # pragma: no cover - a library built without the planes
    pass
