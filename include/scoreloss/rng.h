/* Seeded random streams.
 *
 * A (seed, stream) pair names one independent GSL generator. Work that runs
 * in parallel is cut into fixed blocks, block b drawing from stream b, so a
 * result depends on the seed and never on the number of threads. */
#ifndef SCORELOSS_RNG_H
#define SCORELOSS_RNG_H

#include <stdint.h>

#include <gsl/gsl_rng.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Rows drawn per stream by the library's block-parallel samplers. */
#define SL_RNG_BLOCK 4096

/* The 64-bit seed of stream `stream` under `seed` (SplitMix64 mixing of both,
 * so neighbouring seeds and streams give unrelated generators). */
uint64_t sl_rng_derive(uint64_t seed, uint64_t stream);

/* The uniform generator behind every stream: xoshiro256** registered as a
 * gsl_rng_type (GSL's own types take only 32-bit seeds). */
const gsl_rng_type *sl_rng_type(void);

/* A new GSL generator seeded for (seed, stream); NULL and a message
 * on allocation failure. Free it with gsl_rng_free. */
gsl_rng *sl_rng_alloc(uint64_t seed, uint64_t stream);

#ifdef __cplusplus
}
#endif
#endif
