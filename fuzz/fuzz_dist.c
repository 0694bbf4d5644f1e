/* libFuzzer target: distribution specifications and parameter files
 * (scoreloss/dist.h).
 *
 * Input: one byte choosing the dimension d (1..4), a specification up to the
 * first newline, then the bytes of a parameter file. Every '@' in the
 * specification stands for that file's path, so "gmm:@" and "gauss:@" read
 * it. Plug-in specifications are skipped (they would load whatever shared
 * object the input names). A distribution that is built must sample finite
 * points and give finite exact scores where it claims to have them. */
#include <math.h>

#include "fuzz_common.h"
#include "scoreloss/dist.h"

#define NPOINTS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const size_t d = 1 + data[0] % 4;
    const uint8_t *rest = data + 1, *end = data + size;
    const uint8_t *nl = memchr(rest, '\n', (size_t)(end - rest));
    const size_t speclen = nl ? (size_t)(nl - rest) : (size_t)(end - rest);
    if (speclen > 256 || memchr(rest, '\0', speclen)) return 0;
    char file[512];
    fuzz_path(file, sizeof file, "param");
    const uint8_t *body = nl ? nl + 1 : end;
    if (fuzz_write(file, body, (size_t)(end - body)) != 0) return 0;
    /* The specification with each '@' replaced by the file's path. */
    char spec[256 * 512 + 1];
    size_t n = 0;
    for (size_t i = 0; i < speclen; ++i) {
        if (rest[i] == '@') {
            size_t fl = strlen(file);
            memcpy(spec + n, file, fl);
            n += fl;
        } else {
            spec[n++] = (char)rest[i];
        }
    }
    spec[n] = '\0';
    if (strncmp(spec, "plugin", 6) == 0) {
        unlink(file);
        return 0;
    }
    sl_dist *dist = NULL;
    sl_status st = sl_dist_from_spec(spec, d, &dist);
    if (st != SL_OK) {
        FUZZ_ASSERT(dist == NULL, "a failed specification returns no distribution");
        FUZZ_ASSERT(*sl_last_error() != '\0', "a failed specification leaves a message");
        FUZZ_ASSERT(strchr(sl_last_error(), '\n') == NULL, "the message is one line");
        unlink(file);
        return 0;
    }
    FUZZ_ASSERT(sl_dist_dim(dist) == d, "the dimension asked for");
    const unsigned caps = sl_dist_caps(dist);
    double X[NPOINTS * 4], G[NPOINTS * 4], H[NPOINTS * 16], logp[NPOINTS];
    if (caps & SL_DIST_SAMPLE) {
        st = sl_dist_sample(dist, 7, NPOINTS, X);
        if (st == SL_OK)
            for (size_t i = 0; i < NPOINTS * d; ++i)
                FUZZ_ASSERT(isfinite(X[i]), "samples are finite");
    } else {
        st = SL_EUNSUPPORTED;
    }
    if (st != SL_OK)
        for (size_t i = 0; i < NPOINTS * d; ++i) X[i] = (double)i / 3.0 - 0.5;
    /* Scores may fail (a point where the density underflows) but must say so
     * rather than return non-finite numbers. */
    if ((caps & SL_DIST_GRAD) && (caps & SL_DIST_HESS) &&
        sl_dist_grad_hess(dist, NPOINTS, X, G, H) == SL_OK) {
        for (size_t i = 0; i < NPOINTS * d; ++i) FUZZ_ASSERT(isfinite(G[i]), "finite gradient");
        for (size_t i = 0; i < NPOINTS * d * d; ++i) FUZZ_ASSERT(isfinite(H[i]), "finite Hessian");
    }
    if (caps & SL_DIST_LOGPDF) (void)sl_dist_log_density(dist, NPOINTS, X, logp);
    if (caps & SL_DIST_SCORE4) {
        double S1[4], S2[16], S3[64], S4[256];
        (void)sl_dist_scores(dist, X, d, NULL, S1, S2, S3, S4);
    }
    sl_dist_free(dist);
    unlink(file);
    return 0;
}
