#include "core/linalg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* GSL's CBLAS header declares the standard CBLAS interface; the symbols come
 * from OpenBLAS, which is what is linked (OpenBLAS's own cblas.h clashes with
 * the GSL headers that randist.h pulls in). */
#include <gsl/gsl_cblas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_randist.h>
#include <lapacke.h>

sl_status sl_cholesky(size_t d, const double *A, double *L, const char *what) {
    if (L != A) memcpy(L, A, d * d * sizeof *L);
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)d, L, (lapack_int)d);
    if (info != 0)
        return sl_error(SL_ENUMERIC, "%s is not symmetric positive definite (leading minor %d)",
                        what ? what : "matrix", (int)info);
    for (size_t i = 0; i < d; ++i)
        for (size_t j = i + 1; j < d; ++j) L[i * d + j] = 0.0;
    return SL_OK;
}

sl_status sl_spd_inverse(size_t d, const double *A, double *Ainv, double *logdet,
                         const char *what) {
    sl_status st = sl_cholesky(d, A, Ainv, what);
    if (st) return st;
    double ld = 0.0;
    for (size_t i = 0; i < d; ++i) ld += 2.0 * log(Ainv[i * d + i]);
    lapack_int info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', (lapack_int)d, Ainv, (lapack_int)d);
    if (info != 0) return sl_error(SL_ENUMERIC, "%s is singular", what ? what : "matrix");
    for (size_t i = 0; i < d; ++i)
        for (size_t j = i + 1; j < d; ++j) Ainv[i * d + j] = Ainv[j * d + i];
    if (logdet) *logdet = ld;
    return SL_OK;
}

/* OpenBLAS's thread control (declared here: its cblas.h clashes with GSL's). */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

/* Above this size Jacobi's O(d^3) sweeps (tens of them) cost too much: a
 * 2500 x 2500 unfolding of a k = 50 fourth moment took over ten minutes. */
#define SL_JACOBI_MAX 64

/* LAPACK's dsyevr with OpenBLAS on one thread, whose kernels give the same
 * bits every run; eigenvalues reordered to descending. */
static sl_status sym_eigen_lapack(size_t d, const double *A, double *w, double *V) {
    double *a = malloc(d * d * sizeof *a), *z = malloc(d * d * sizeof *z);
    double *wa = malloc(d * sizeof *wa);
    lapack_int *isuppz = malloc(2 * d * sizeof *isuppz);
    sl_status st = SL_OK;
    if (!a || !z || !wa || !isuppz)
        st = sl_error(SL_ENOMEM, "out of memory in eigen-decomposition");
    if (st == SL_OK) {
        memcpy(a, A, d * d * sizeof *A);
        lapack_int m = 0;
        const int threads = openblas_get_num_threads();
        openblas_set_num_threads(1);
        lapack_int info =
            LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'A', 'U', (lapack_int)d, a, (lapack_int)d, 0.0,
                           0.0, 0, 0, 0.0, &m, wa, z, (lapack_int)d, isuppz);
        openblas_set_num_threads(threads);
        if (info != 0 || (size_t)m != d)
            st = sl_error(SL_ENUMERIC, "symmetric eigen-decomposition failed (dsyevr info %d)",
                          (int)info);
    }
    if (st == SL_OK)
        for (size_t i = 0; i < d; ++i) {
            w[i] = wa[d - 1 - i];
            for (size_t r = 0; r < d; ++r) V[r * d + i] = z[r * d + (d - 1 - i)];
        }
    free(a);
    free(z);
    free(wa);
    free(isuppz);
    return st;
}

sl_status sl_sym_eigen(size_t d, const double *A, double *w, double *V) {
    if (d > SL_JACOBI_MAX) return sym_eigen_lapack(d, A, w, V);
    /* GSL's Jacobi solver: LAPACK's dsyevd/dsyev and GSL's symmv all go
     * through OpenBLAS's level-2 kernels (dsymv/dsyr2), whose last bits
     * changed with OPENBLAS_NUM_THREADS even on 3 x 3 matrices (measured),
     * which broke thread-count independence of everything downstream. Jacobi
     * rotations are plain loops, accurate to high relative precision, and
     * cheap for small d (above SL_JACOBI_MAX: dsyevr on one BLAS thread). */
    gsl_matrix *a = gsl_matrix_alloc(d, d), *evec = gsl_matrix_alloc(d, d);
    gsl_vector *eval = gsl_vector_alloc(d);
    sl_status st = SL_OK;
    unsigned int nrot = 0;
    if (!a || !evec || !eval) {
        st = sl_error(SL_ENOMEM, "out of memory in eigen-decomposition");
    } else {
        memcpy(a->data, A, d * d * sizeof *A); /* row-major, tda = d */
        /* GSL stops with GSL_EMAXITER unless the off-diagonal part reaches
         * exactly 0; what is left of it (in a, rotated in place) is the
         * error of the eigenvalues, so accept it when it is at rounding level. */
        int rc = gsl_eigen_jacobi(a, eval, evec, 50, &nrot);
        double off = 0.0, scale = 0.0;
        for (size_t r = 0; r < d; ++r)
            for (size_t c = 0; c < d; ++c) {
                double v = fabs(gsl_matrix_get(a, r, c));
                if (r == c)
                    scale = fmax(scale, v);
                else
                    off = fmax(off, v);
            }
        if (rc != 0 && !(off <= 1e-14 * scale))
            st = sl_error(SL_ENUMERIC, "symmetric eigen-decomposition did not converge");
        else
            gsl_eigen_symmv_sort(eval, evec, GSL_EIGEN_SORT_VAL_DESC);
    }
    if (st == SL_OK) {
        for (size_t i = 0; i < d; ++i) w[i] = gsl_vector_get(eval, i);
        for (size_t r = 0; r < d; ++r)
            for (size_t c = 0; c < d; ++c) V[r * d + c] = gsl_matrix_get(evec, r, c);
    }
    gsl_vector_free(eval);
    gsl_matrix_free(evec);
    gsl_matrix_free(a);
    return st;
}

sl_status sl_svd(size_t r, size_t c, const double *A, double *s, double *U, double *Vt) {
    size_t mn = r < c ? r : c;
    double *a = malloc(r * c * sizeof *a);
    double *superb = malloc((mn > 1 ? mn : 1) * sizeof *superb);
    if (!a || !superb) {
        free(a);
        free(superb);
        return sl_error(SL_ENOMEM, "out of memory in SVD");
    }
    memcpy(a, A, r * c * sizeof *a);
    char jobu = U ? 'S' : 'N', jobvt = Vt ? 'S' : 'N';
    double dummy = 0.0;
    lapack_int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, jobu, jobvt, (lapack_int)r, (lapack_int)c, a,
                                     (lapack_int)c, s, U ? U : &dummy, (lapack_int)mn,
                                     Vt ? Vt : &dummy, (lapack_int)c, superb);
    free(a);
    free(superb);
    if (info != 0) return sl_error(SL_ENUMERIC, "SVD did not converge (info %d)", (int)info);
    return SL_OK;
}

sl_status sl_random_orthonormal_rows(size_t r, size_t c, gsl_rng *rng, double *Q) {
    if (r > c)
        return sl_error(SL_EINVAL, "cannot have %zu orthonormal rows in dimension %zu", r, c);
    /* QR of the c x r Gaussian matrix G (column-major view of Q' as row-major
     * r x c is awkward; work on G = c x r row-major and transpose at the end). */
    double *G = malloc(c * r * sizeof *G);
    double *tau = malloc(r * sizeof *tau);
    double *diag = malloc(r * sizeof *diag);
    if (!G || !tau || !diag) {
        free(G);
        free(tau);
        free(diag);
        return sl_error(SL_ENOMEM, "out of memory for a random orthonormal matrix");
    }
    for (size_t i = 0; i < c * r; ++i) G[i] = gsl_ran_gaussian(rng, 1.0);
    lapack_int info =
        LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)c, (lapack_int)r, G, (lapack_int)r, tau);
    if (info == 0) {
        for (size_t j = 0; j < r; ++j) diag[j] = G[j * r + j];
        info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)c, (lapack_int)r, (lapack_int)r, G,
                              (lapack_int)r, tau);
    }
    if (info != 0) {
        free(G);
        free(tau);
        free(diag);
        return sl_error(SL_ENUMERIC, "QR decomposition failed (info %d)", (int)info);
    }
    /* Multiply column j by sign(R_jj) so the distribution is uniform (Haar). */
    for (size_t j = 0; j < r; ++j) {
        double s = diag[j] < 0 ? -1.0 : 1.0;
        for (size_t i = 0; i < c; ++i) Q[j * c + i] = s * G[i * r + j];
    }
    free(G);
    free(tau);
    free(diag);
    return SL_OK;
}

void sl_matmul(size_t m, size_t k, size_t n, const double *A, const double *B, double *C) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0, A, (int)k,
                B, (int)n, 0.0, C, (int)n);
}

int sl_all_finite(size_t n, const double *x) {
    for (size_t i = 0; i < n; ++i)
        if (!isfinite(x[i])) return 0;
    return 1;
}
