/* Distributions from shared objects ("plugin:PATH.so[:ARGS]").
 *
 * The object exports sl_plugin_init (include/scoreloss/dist.h), which fills
 * a sl_dist_callbacks; the result is wrapped by sl_dist_from_callbacks. The
 * code of every callback lives in the object, so the dlopen handle must stay
 * open while the distribution lives: a small owner struct holds the handle
 * and the plug-in's own callbacks, the distribution's callbacks are
 * trampolines into them, and its destroy runs the plug-in's destroy and then
 * dlclose. See examples/plugin_gumbel.c for a worked plug-in. */
#include "model/dist_internal.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

typedef struct plugin_owner {
    void *handle;
    sl_dist_callbacks cb; /* as the plug-in filled them */
} plugin_owner;

static int owner_sample(void *data, size_t d, size_t n, gsl_rng *rng, double *X) {
    const plugin_owner *o = data;
    return o->cb.sample(o->cb.data, d, n, rng, X);
}

static int owner_log_density(void *data, size_t d, const double *x, double *logp) {
    const plugin_owner *o = data;
    return o->cb.log_density(o->cb.data, d, x, logp);
}

static int owner_gradient(void *data, size_t d, const double *x, double *g) {
    const plugin_owner *o = data;
    return o->cb.gradient(o->cb.data, d, x, g);
}

static int owner_hessian(void *data, size_t d, const double *x, double *H) {
    const plugin_owner *o = data;
    return o->cb.hessian(o->cb.data, d, x, H);
}

static int owner_score3(void *data, size_t d, const double *x, size_t m, const double *V,
                        double *S3) {
    const plugin_owner *o = data;
    return o->cb.score3(o->cb.data, d, x, m, V, S3);
}

static int owner_score4(void *data, size_t d, const double *x, size_t m, const double *V,
                        double *S4) {
    const plugin_owner *o = data;
    return o->cb.score4(o->cb.data, d, x, m, V, S4);
}

/* The plug-in's destroy is code inside the object: run it before dlclose. */
static void owner_destroy(void *data) {
    plugin_owner *o = data;
    if (o->cb.destroy) o->cb.destroy(o->cb.data);
    dlclose(o->handle);
    free(o);
}

/* path is handed to dlopen as given: with a '/' it is a file name (so
 * "./x.so" means x.so in the current directory), without one dlopen searches
 * the library path (LD_LIBRARY_PATH, the cache, the default directories),
 * as for any shared library. Failures: SL_EIO when the object cannot be
 * loaded, SL_EINVAL when it does not export sl_plugin_init or its init
 * refuses (bad ARGS, unsupported dimension, another plug-in ABI). */
sl_status sl_dist_plugin_alloc(const char *path, const char *args, size_t d, sl_dist **out) {
    *out = NULL;
    if (!path || !*path) return sl_error(SL_EINVAL, "plug-in: empty path");
    if (!args) args = "";
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        /* The commonest surprise: a bare name is not looked up in the
         * current directory. */
        const char *hint = strchr(path, '/') ? ""
                                             : " (a name without '/' is searched on the library "
                                               "path; write ./NAME for the current directory)";
        return sl_error(SL_EIO, "cannot load plug-in '%s': %s%s", path, why ? why : "unknown error",
                        hint);
    }
    void *sym = dlsym(handle, SL_PLUGIN_SYMBOL);
    if (!sym) {
        dlclose(handle);
        return sl_error(SL_EINVAL, "%s does not export %s", path, SL_PLUGIN_SYMBOL);
    }
    /* ISO C has no object-to-function pointer conversion; POSIX guarantees
     * the representation, so copy the bits. */
    sl_plugin_init_fn init;
    _Static_assert(sizeof init == sizeof sym, "function and object pointers differ in size");
    memcpy(&init, &sym, sizeof init);

    sl_dist_callbacks cb;
    memset(&cb, 0, sizeof cb);
    char err[512] = "";
    if (init(SL_PLUGIN_ABI, args, d, &cb, err, sizeof err) != 0) {
        err[sizeof err - 1] = '\0';
        dlclose(handle);
        if (!err[0])
            return sl_error(SL_EINVAL,
                            "%s: %s failed without a message (is it built for plug-in ABI %d?)",
                            path, SL_PLUGIN_SYMBOL, SL_PLUGIN_ABI);
        return sl_error(SL_EINVAL, "%s: %s", path, err);
    }

    plugin_owner *o = malloc(sizeof *o);
    if (!o) {
        if (cb.destroy) cb.destroy(cb.data);
        dlclose(handle);
        return sl_error(SL_ENOMEM, "out of memory loading plug-in '%s'", path);
    }
    o->handle = handle;
    o->cb = cb;

    /* Trampolines only where the plug-in has a callback: sl_dist_from_callbacks
     * derives the capabilities from which pointers are set. The name is
     * copied there, before any dlclose. */
    sl_dist_callbacks wrapped = cb;
    wrapped.name = cb.name && *cb.name ? cb.name : path;
    wrapped.sample = cb.sample ? owner_sample : NULL;
    wrapped.log_density = cb.log_density ? owner_log_density : NULL;
    wrapped.gradient = cb.gradient ? owner_gradient : NULL;
    wrapped.hessian = cb.hessian ? owner_hessian : NULL;
    wrapped.score3 = cb.score3 ? owner_score3 : NULL;
    wrapped.score4 = cb.score4 ? owner_score4 : NULL;
    wrapped.destroy = owner_destroy;
    wrapped.data = o;
    /* On failure this has already run owner_destroy (plug-in destroy, dlclose). */
    sl_status st = sl_dist_from_callbacks(&wrapped, d, out);
    if (st) return sl_error_prefix(st, "%s: ", path);
    return SL_OK;
}
