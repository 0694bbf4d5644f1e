/* Small dense linear algebra over CBLAS and LAPACKE (internal).
 * Matrices are row-major with leading dimension equal to their column count
 * unless said otherwise. Every routine reports failures through sl_error. */
#ifndef SL_CORE_LINALG_H
#define SL_CORE_LINALG_H

#include <stddef.h>

#include <gsl/gsl_rng.h>

#include "scoreloss/status.h"

/* Cholesky factor L (lower, A = L L') of the symmetric positive definite
 * d x d matrix A, written into L (may alias A; the upper triangle is zeroed).
 * what names the matrix in the message when A is not positive definite. */
sl_status sl_cholesky(size_t d, const double *A, double *L, const char *what);

/* Inverse and log-determinant of an SPD matrix (logdet may be NULL). */
sl_status sl_spd_inverse(size_t d, const double *A, double *Ainv, double *logdet, const char *what);

/* Eigen-decomposition of a symmetric d x d matrix: eigenvalues in descending
 * order in w, the matching unit eigenvectors as the COLUMNS of V (d x d). */
sl_status sl_sym_eigen(size_t d, const double *A, double *w, double *V);

/* Singular values (descending, min(r, c) of them) and, if U/Vt are not NULL,
 * the thin factors U (r x min) and Vt (min x c) of an r x c matrix. */
sl_status sl_svd(size_t r, size_t c, const double *A, double *s, double *U, double *Vt);

/* A random r x c matrix with orthonormal rows (r <= c), from the QR
 * decomposition of a Gaussian matrix with the signs fixed so the result is
 * Haar distributed. */
sl_status sl_random_orthonormal_rows(size_t r, size_t c, gsl_rng *rng, double *Q);

/* C = A B for row-major A (m x k), B (k x n). */
void sl_matmul(size_t m, size_t k, size_t n, const double *A, const double *B, double *C);

/* 1 if all n values are finite, else 0. */
int sl_all_finite(size_t n, const double *x);

#endif
