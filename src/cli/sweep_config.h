/* Sweep configurations (internal to the command-line tool): the parser of
 * the `key = value, value, ...` files of `scoreloss sweep`, and the plan of
 * runs they describe.
 *
 * The format, line by line:
 *
 *   # a comment (also after a value)
 *   dist  = gauss, logistic
 *   n     = 1e4, 1e5, 1e6        integers may be written in exponent form
 *   seeds = 1..10                integer lists may hold ranges A..B
 *   a     = "1,2,0.5"            quotes keep commas inside one value
 *
 * Keys are the parameters of one run (sweep_param) and `output`. A key given
 * once holds a list; the runs are every combination of the lists, with the
 * seeds innermost. Values are checked here as far as that needs no files
 * (distribution specifications are checked when the runs start) and stored
 * in a canonical text (1e4 becomes 10000), the text the results file
 * records. Errors name NAME:LINE:COLUMN (1-based).
 *
 * Both functions that read a configuration are pure: no files, no global
 * state, everything in memory the caller frees. */
#ifndef SL_CLI_SWEEP_CONFIG_H
#define SL_CLI_SWEEP_CONFIG_H

#include <stddef.h>

/* The parameters of one run, in the order of the results' columns. */
typedef enum sweep_param {
    SWEEP_DIST = 0,     /* input distribution specification, as `scoreloss sample --dist` */
    SWEEP_D,            /* dimension */
    SWEEP_K,            /* hidden units */
    SWEEP_N,            /* samples */
    SWEEP_ACT,          /* activation */
    SWEEP_NOISE,        /* label noise */
    SWEEP_W,            /* first layer, as `scoreloss plant --w` */
    SWEEP_A,            /* second layer, as `scoreloss plant --a` */
    SWEEP_LOSS,         /* landscape, signfree, l2 */
    SWEEP_SCORE,        /* llsfe, kde, gauss, hermite, exact */
    SWEEP_ROUTE,        /* exact scores: auto, full, projected, quadratic */
    SWEEP_S4,           /* estimated scores, projected route: kde, cumulant, quadratic */
    SWEEP_S4_REFERENCE, /* its reference samples: auto, all or a count */
    SWEEP_U_ROWS,       /* the rows whose d-dimensional scores give U (0 = all) */
    SWEEP_ASSUME,       /* estimated scores: none, independent */
    SWEEP_DETREND,      /* exact scores and the quadratic route: auto, 0..3 */
    SWEEP_REFIT,        /* estimated scores, projected route: refit passes (auto, 0..20) */
    SWEEP_S4_THIN,    /* estimated scores, projected route: the thin rule (auto, t, gauss, zero) */
    SWEEP_SHRINK_MIN, /* llsfe, projected route: the lowest automatic shrink (auto, ladder) */
    SWEEP_SWAP,       /* estimated scores, projected route, refit passes: swap rounds (0..10) */
    SWEEP_MODE,       /* auto, tensor, minibatch */
    SWEEP_BANDWIDTH,  /* llsfe and kde: auto, H, knn:K, const:C */
    SWEEP_MU,         /* landscape weight */
    SWEEP_LAMBDA,     /* norm penalty */
    SWEEP_CONSTRAINT, /* auto, sphere, orthonormal, none */
    SWEEP_LR,         /* Adam learning rate */
    SWEEP_BATCH,      /* minibatch size */
    SWEEP_EPOCHS,     /* auto or a count */
    SWEEP_RESTARTS,   /* random initialisations */
    SWEEP_HOLDOUT,    /* held-out fraction */
    SWEEP_SEED,       /* the seed of sample, plant and recover alike */
    SWEEP_NPARAM
} sweep_param;

/* The results column of a parameter ("dist", ..., "u_rows", ..., "seed"). */
const char *sweep_param_name(int param);
/* The configuration key of a parameter ("dist", ..., "u-rows", ..., "seeds",
 * spelt as `scoreloss recover` spells its option); the column name is
 * accepted as a key too. */
const char *sweep_param_key(int param);

/* Text written for a parameter that does not apply to a run (the score of
 * an l2 run, the bandwidth of hermite scores, ...). */
#define SWEEP_NOT_APPLICABLE "-"

/* Limits that keep a mistyped range from exhausting memory. */
#define SWEEP_MAX_LIST 1000000u
#define SWEEP_MAX_COMBINATIONS 1000000u

typedef struct sweep_value {
    char *text;         /* canonical text */
    unsigned line, col; /* where it was written; 0 for a default */
} sweep_value;

typedef struct sweep_list {
    size_t count; /* >= 1 after a successful parse */
    sweep_value *values;
    unsigned line, col; /* where the key was written; 0 when defaulted */
} sweep_list;

typedef struct sweep_config {
    sweep_list param[SWEEP_NPARAM];
    char *output; /* the results file, or NULL when not given */
    unsigned output_line, output_col;
    size_t combinations; /* product of the list lengths */
} sweep_config;

/* Parses len bytes of buf (no terminating NUL needed; a NUL inside is an
 * error) named `name` in messages. Keys left out take the defaults of
 * `scoreloss recover` and `plant`; dist, d, k and n are required. Returns 0
 * and fills *out, or -1 with out emptied and a one-line message
 * "NAME:LINE:COL: ..." in err (errlen bytes, always terminated when
 * errlen > 0). Free *out with sweep_config_free either way. */
int sweep_config_parse(const char *buf, size_t len, const char *name, sweep_config *out, char *err,
                       size_t errlen);
void sweep_config_free(sweep_config *cfg);

/* One run: the text of each parameter (pointing into the configuration, or
 * SWEEP_NOT_APPLICABLE). */
typedef struct sweep_run {
    const char *value[SWEEP_NPARAM];
} sweep_run;

/* The runs of a configuration, in its order (seeds innermost). Parameters
 * that do not apply to a run are SWEEP_NOT_APPLICABLE, and combinations that
 * become equal that way are listed once; combinations `scoreloss recover`
 * would refuse (k > d, the sign-free loss on minibatches, constraint none
 * without lambda > 0, assume independent with exact scores or on the
 * projected route, detrend 1..3 off the quadratic route with estimated
 * scores) are left out and counted. */
typedef struct sweep_plan {
    size_t nruns;
    sweep_run *runs;
    char **keys;               /* each run's parameters as the CSV fields of its row */
    size_t duplicates;         /* combinations equal to an earlier run */
    size_t left_out;           /* combinations recover would refuse */
    char left_out_reason[160]; /* the first such reason, "" if none */
} sweep_plan;

/* Returns 0 and fills *out, or -1 (out of memory) with a message in err. */
int sweep_plan_make(const sweep_config *cfg, sweep_plan *out, char *err, size_t errlen);
void sweep_plan_free(sweep_plan *plan);

/* Fields joined into one CSV row (without a line break): a field holding a
 * comma, quote or line break is quoted, with inner quotes doubled. Returns
 * a new string (free with free()) or NULL when out of memory. */
char *sweep_csv_join(const char *const *fields, size_t count);

#endif
