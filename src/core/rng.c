#include "scoreloss/rng.h"
#include "scoreloss/status.h"

#include <string.h>

/* GSL's own generators take a 32-bit seed (mt19937 keeps only the low 32
 * bits of gsl_rng_set's argument), so two of the ~10^5 streams a sweep draws
 * could coincide. The uniform source is therefore xoshiro256** with its full
 * 256-bit state filled from (seed, stream) by SplitMix64, registered as an
 * ordinary gsl_rng_type: every variate (gaussian, chi-squared, logistic, ...)
 * still comes from GSL's gsl_ran_* functions. */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t sl_rng_derive(uint64_t seed, uint64_t stream) {
    uint64_t s = seed;
    uint64_t a = splitmix64(&s);
    s = a ^ (stream * 0xD1B54A32D192ED03ULL + 0x8CB92BA72F3D8DD7ULL);
    splitmix64(&s);
    return splitmix64(&s);
}

typedef struct {
    uint64_t s[4];
} xoshiro_state;

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t xoshiro_next(xoshiro_state *st) {
    uint64_t *s = st->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void xoshiro_fill(xoshiro_state *st, uint64_t seed64) {
    uint64_t sm = seed64;
    for (int i = 0; i < 4; ++i) st->s[i] = splitmix64(&sm);
}

/* gsl_rng_set hands us an unsigned long, 64 bits on the platforms we build for. */
static void xoshiro_set(void *vstate, unsigned long int seed) {
    xoshiro_fill(vstate, (uint64_t)seed);
}

/* GSL's get() contract returns values in [min, max]; use the top 32 bits. */
static unsigned long int xoshiro_get(void *vstate) {
    return (unsigned long int)(xoshiro_next(vstate) >> 32);
}

/* 53 random bits in [0, 1). */
static double xoshiro_get_double(void *vstate) {
    return (double)(xoshiro_next(vstate) >> 11) * 0x1.0p-53;
}

static const gsl_rng_type xoshiro_type = {"xoshiro256**",        0xffffffffUL, 0,
                                          sizeof(xoshiro_state), xoshiro_set,  xoshiro_get,
                                          xoshiro_get_double};

const gsl_rng_type *sl_rng_type(void) {
    return &xoshiro_type;
}

gsl_rng *sl_rng_alloc(uint64_t seed, uint64_t stream) {
    gsl_rng *r = gsl_rng_alloc(&xoshiro_type);
    if (!r) {
        sl_error(SL_ENOMEM, "cannot allocate a random generator");
        return NULL;
    }
    xoshiro_fill(r->state, sl_rng_derive(seed, stream));
    return r;
}
