/* `scoreloss sweep CONFIG`: runs a grid of experiments (sweep_config.h), each
 * the pipeline sample -> plant -> recover in process with one seed, and
 * appends one CSV row per run to a results file.
 *
 * The results file is the sweep's memory: a run whose parameters are
 * already in it is skipped, each finished row is appended with one write()
 * and fsync()ed, so a killed sweep loses no finished row, and a last line
 * cut short by the kill is dropped (the file rewritten atomically) when the
 * sweep is resumed. Under mpirun, rank 0 hands runs out and writes the rows
 * (sweep_mpi.c). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/sweep.h"
#include "cli/sweep_config.h"
#include "scoreloss/dist.h"
#include "scoreloss/memlimit.h"
#include "scoreloss/network.h"
#include "scoreloss/recover.h"
#include "scoreloss/rng.h"
#include "scoreloss/s4.h"
#include "scoreloss/score.h"

/* The streams of the seed that `scoreloss plant` uses for W, a and the noise:
 * a run equals the command-line pipeline with the same seed. */
enum { STREAM_W = 1, STREAM_A = 2, STREAM_NOISE = 3 };

static const cli_option options[] = {
    {"config", 0, CLI_VALUE, "CONFIG", NULL, "the configuration, instead of the first argument"},
    {"output", 'o', CLI_VALUE | CLI_OUTPUT, "RESULTS.csv", NULL,
     "the results file (instead of the configuration's output key)"},
    {"dry-run", 0, 0, NULL, NULL, "count the runs (to do, done, left out) and exit"},
    {"progress", 0, 0, NULL, NULL, "show progress on stderr even when it is not a terminal"},
};

static int run(int argc, char **argv);

const cli_command cli_cmd_sweep = {
    "sweep",
    "run a grid of sample -> plant -> recover experiments, one CSV row per run",
    "CONFIG [-o RESULTS.csv] [--dry-run] [--progress]\n"
    "       mpirun -np P scoreloss sweep CONFIG ...",
    "CONFIG holds `key = value, value, ...` lines ('#' comments, integer ranges A..B,\n"
    "quotes around values with commas); the runs are every combination, seeds\n"
    "innermost. Keys: dist, d, k, n (required), act, noise, w, a (as plant takes\n"
    "them), loss, score, route, s4, s4-reference, u-rows, assume (none or\n"
    "independent), detrend, refit, s4-thin, shrink-min, swap, mode, bandwidth,\n"
    "mu, lambda, constraint, lr, batch, epochs, restarts, holdout (as recover\n"
    "takes them), seeds (default 1) and output.\n"
    "Each run samples with its seed, plants with it and recovers with it, as\n"
    "`sample`, `plant` and `recover` would with --seed S, and appends one row:\n"
    "every parameter, every measure and the seconds per phase. Runs already in\n"
    "the results file are skipped, so an interrupted sweep resumes where it\n"
    "stopped. At the end, the mean and standard error of err_max over the seeds\n"
    "of each cell. Under mpirun (when built with MPI) rank 0 hands runs out to\n"
    "the others as they finish and writes the rows. See data/README.md.",
    "scoreloss sweep data/sweep_small.conf -o small.csv",
    options,
    sizeof options / sizeof options[0],
    run,
};

/* ---- the results' columns ------------------------------------------------------------ */

static const char *const metric_names[] = {"status",         "err_max",
                                           "err_min",        "distinct",
                                           "worst_angle",    "holdout_error",
                                           "train_error",    "final_loss",
                                           "m2_gap",         "signal_min",
                                           "signal_max",     "found_signal_min",
                                           "found_snr_min",  "truth_signal_min",
                                           "sign",           "route_used",
                                           "tensor_mode",    "steps",
                                           "stop_reason",    "warnings",
                                           "seconds_sample", "seconds_plant",
                                           "seconds_scores", "seconds_moments",
                                           "seconds_sgd",    "seconds_second_layer",
                                           "seconds_total"};
#define NMETRICS (sizeof metric_names / sizeof metric_names[0])
#define COL_STATUS SWEEP_NPARAM
#define COL_ERR_MAX (SWEEP_NPARAM + 1)

/* ---- text -------------------------------------------------------------------------- */

/* A measure: 10 significant digits (the rows are compared as text across
 * process counts, and 10 digits are far below any error of interest). */
static void put_num(cli_text *t, double v) {
    if (isnan(v))
        cli_text_put(t, ",nan");
    else
        cli_text_put(t, ",%.10g", v);
}

int sweep_message(int status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; ++p)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fprintf(stderr, "scoreloss sweep: %s\n", msg);
    fflush(stderr);
    return status;
}

/* ---- the state ---------------------------------------------------------------------- */

typedef struct {
    int enabled, tty, shown, last_decile;
    double start, last_draw;
    size_t total, done;
} bar;

struct sweep_state {
    sweep_config cfg;
    sweep_plan plan;
    const char *config_path;
    const char *output;
    int dry_run;
    /* Rank 0 only. */
    unsigned char *have;   /* plan run has a row in the results file */
    unsigned char *failed; /* its row's status is not ok */
    double *err_max;       /* its err_max, NAN when failed or unknown */
    size_t *pending;
    size_t npending;
    int fd;
    size_t recorded, failed_now, other_rows;
    bar progress;
};

size_t sweep_pending_count(const sweep_state *s) {
    return s->npending;
}

size_t sweep_pending_run(const sweep_state *s, size_t i) {
    return s->pending[i];
}

/* ---- one run ------------------------------------------------------------------------ */

static int name_index(const char *v, const char *const *names, int count) {
    for (int i = 0; i < count; ++i)
        if (strcmp(v, names[i]) == 0) return i;
    return 0;
}

static size_t count_lines(const char *s) {
    size_t n = 0;
    if (!s) return 0;
    while (*s) {
        s += strcspn(s, "\n");
        ++n;
        if (*s) ++s;
    }
    return n;
}

/* The value of smallest magnitude, NAN for none. */
static double smallest(const double *v, size_t n) {
    double best = NAN;
    for (size_t i = 0; v && i < n; ++i)
        if (isnan(best) || fabs(v[i]) < fabs(best)) best = v[i];
    return best;
}

static void put_measures(cli_text *t, const sweep_run *run, const sl_recover_result *r, size_t k) {
    const int l2 = strcmp(run->value[SWEEP_LOSS], "l2") == 0;
    cli_text_put(t, ",ok");
    put_num(t, r->have_error ? r->error.err_max : NAN);
    put_num(t, r->have_error ? r->error.err_min : NAN);
    cli_text_put(t, ",%zu", r->have_error ? r->error.distinct : (size_t)0);
    put_num(t, r->have_error ? r->error.worst_angle : NAN);
    put_num(t, r->holdout_error);
    put_num(t, r->train_error);
    put_num(t, r->final_loss);
    double gap = NAN;
    if (r->m2_evals && r->nevals > k && r->m2_evals[k] != 0.0)
        gap = fabs(r->m2_evals[k - 1]) / fabs(r->m2_evals[k]);
    put_num(t, gap);
    double smin = NAN, smax = NAN;
    for (size_t i = 0; r->signal && i < k; ++i) {
        if (isnan(smin) || r->signal[i] < smin) smin = r->signal[i];
        if (isnan(smax) || r->signal[i] > smax) smax = r->signal[i];
    }
    put_num(t, smin);
    put_num(t, smax);
    put_num(t, smallest(r->found_signal, k));
    double snr = NAN;
    for (size_t i = 0; r->found_signal && r->found_signal_se && i < k; ++i) {
        double v = r->found_signal_se[i] > 0.0 ? fabs(r->found_signal[i]) / r->found_signal_se[i]
                                               : HUGE_VAL;
        if (isnan(snr) || v < snr) snr = v;
    }
    put_num(t, snr);
    put_num(t, smallest(r->truth_signal, r->ntruth_signal));
    cli_text_put(t, ",%d", r->sign);
    cli_text_put(t, ",%s", l2 ? SWEEP_NOT_APPLICABLE : sl_recover_route_name(r->route));
    cli_text_put(t, ",%d", r->tensor_mode);
    cli_text_put(t, ",%zu", r->sgd ? r->sgd->steps : (size_t)0);
    cli_text_put(t, ",%s",
                 r->sgd && r->sgd->stop_reason ? r->sgd->stop_reason : SWEEP_NOT_APPLICABLE);
    cli_text_put(t, ",%zu", count_lines(r->warnings));
}

/* The failure of one run as a status field: commas become semicolons, quotes
 * and line breaks go, so the field needs no quoting. */
static void put_failure(cli_text *t, const char *msg) {
    char clean[240];
    snprintf(clean, sizeof clean, "failed: %s", *msg ? msg : "unknown error");
    for (char *p = clean; *p; ++p)
        if (*p == ',' || *p == '"' || (unsigned char)*p < 0x20)
            *p = *p == ',' ? ';' : *p == '"' ? '\'' : ' ';
    cli_text_put(t, ",%s", clean);
    for (size_t i = 1; i < NMETRICS - 7; ++i) cli_text_put(t, ",nan");
}

int sweep_execute(const sweep_state *s, size_t index, char **row, size_t *len) {
    const sweep_run *run = &s->plan.runs[index];
    const char *const *v = run->value;
    const size_t d = (size_t)strtoull(v[SWEEP_D], NULL, 10);
    const size_t k = (size_t)strtoull(v[SWEEP_K], NULL, 10);
    const size_t n = (size_t)strtoull(v[SWEEP_N], NULL, 10);
    const uint64_t seed = strtoull(v[SWEEP_SEED], NULL, 10);
    const int l2 = strcmp(v[SWEEP_LOSS], "l2") == 0;
    static const char *const route_names[] = {"auto", "full", "projected", "quadratic"};
    static const sl_recover_route routes[] = {SL_ROUTE_AUTO, SL_ROUTE_FULL, SL_ROUTE_PROJECTED,
                                              SL_ROUTE_QUADRATIC};
    static const char *const mode_names[] = {"auto", "tensor", "minibatch"};
    static const sl_recover_mode modes[] = {SL_MODE_AUTO, SL_MODE_TENSOR, SL_MODE_MINIBATCH};
    static const char *const constraint_names[] = {"auto", "sphere", "orthonormal", "none"};
    static const sl_projection projections[] = {SL_PROJ_ORTHONORMAL, SL_PROJ_SPHERE,
                                                SL_PROJ_ORTHONORMAL, SL_PROJ_NONE};

    cli_text t = {0};
    cli_text_put(&t, "%s", s->plan.keys[index]);
    sl_dist *dist = NULL;
    sl_network *net = NULL;
    sl_recover_result *r = NULL;
    double *X = NULL, *y = NULL;
    double t0 = cli_now(), t_sample = 0.0, t_plant = 0.0;
    sl_status st = SL_OK;
    sl_recover_options o;
    sl_recover_options_default(&o);
    o.k = k;
    o.seed = seed;
    o.holdout = strtod(v[SWEEP_HOLDOUT], NULL);
    o.sgd.lr = strtod(v[SWEEP_LR], NULL);
    o.sgd.batch = (size_t)strtoull(v[SWEEP_BATCH], NULL, 10);
    o.sgd.restarts = (size_t)strtoull(v[SWEEP_RESTARTS], NULL, 10);
    if (strcmp(v[SWEEP_EPOCHS], "auto") != 0)
        o.sgd.epochs = (size_t)strtoull(v[SWEEP_EPOCHS], NULL, 10);
    if (!st) st = sl_act_from_name(v[SWEEP_ACT], &o.act);
    if (!st) st = sl_recover_loss_from_name(v[SWEEP_LOSS], &o.loss);
    if (!st && !l2) {
        /* No score with independent coordinates: the factorised fit. */
        if (strcmp(v[SWEEP_SCORE], SWEEP_NOT_APPLICABLE) != 0)
            st = sl_score_type_from_name(v[SWEEP_SCORE], &o.score);
        if (!st && strcmp(v[SWEEP_BANDWIDTH], SWEEP_NOT_APPLICABLE) != 0)
            st = sl_bandwidth_parse(v[SWEEP_BANDWIDTH], &o.score_opt.bandwidth);
        if (strcmp(v[SWEEP_ROUTE], SWEEP_NOT_APPLICABLE) != 0)
            o.route = routes[name_index(v[SWEEP_ROUTE], route_names, 4)];
        if (!st && strcmp(v[SWEEP_S4], SWEEP_NOT_APPLICABLE) != 0)
            st = sl_s4_estimator_from_name(v[SWEEP_S4], &o.s4.estimator);
        if (strcmp(v[SWEEP_S4_REFERENCE], "all") == 0)
            o.s4.reference = 0;
        else if (strcmp(v[SWEEP_S4_REFERENCE], "auto") != 0 &&
                 strcmp(v[SWEEP_S4_REFERENCE], SWEEP_NOT_APPLICABLE) != 0)
            o.s4.reference = (size_t)strtoull(v[SWEEP_S4_REFERENCE], NULL, 10);
        if (strcmp(v[SWEEP_U_ROWS], SWEEP_NOT_APPLICABLE) != 0)
            o.u_rows = (size_t)strtoull(v[SWEEP_U_ROWS], NULL, 10);
        o.assume_independent = strcmp(v[SWEEP_ASSUME], "independent") == 0;
        if (strcmp(v[SWEEP_DETREND], "auto") != 0 &&
            strcmp(v[SWEEP_DETREND], SWEEP_NOT_APPLICABLE) != 0)
            o.detrend = atoi(v[SWEEP_DETREND]);
        if (strcmp(v[SWEEP_REFIT], SWEEP_NOT_APPLICABLE) != 0) o.refit = atoi(v[SWEEP_REFIT]);
        if (!st && strcmp(v[SWEEP_S4_THIN], SWEEP_NOT_APPLICABLE) != 0)
            st = sl_s4_thin_from_name(v[SWEEP_S4_THIN], &o.s4.thin);
        if (strcmp(v[SWEEP_SHRINK_MIN], SWEEP_NOT_APPLICABLE) != 0)
            o.shrink_min = strtod(v[SWEEP_SHRINK_MIN], NULL);
        if (strcmp(v[SWEEP_SWAP], SWEEP_NOT_APPLICABLE) != 0) o.swap = atoi(v[SWEEP_SWAP]);
        o.mode = modes[name_index(v[SWEEP_MODE], mode_names, 3)];
        o.sgd.projection = projections[name_index(v[SWEEP_CONSTRAINT], constraint_names, 4)];
        if (strcmp(v[SWEEP_MU], SWEEP_NOT_APPLICABLE) != 0)
            o.landscape.mu = strtod(v[SWEEP_MU], NULL);
        o.landscape.lambda = strtod(v[SWEEP_LAMBDA], NULL);
    }
    if (!st) st = sl_dist_from_spec(v[SWEEP_DIST], d, &dist);
    char what[96];
    snprintf(what, sizeof what, "the samples of a run (n = %zu, d = %zu)", n, d);
    /* A run too large for the memory is a failed row, not a killed sweep. */
    if (!st) st = sl_mem_check(sl_mem_doubles(sl_mem_mul(n, d + 1)), what);
    if (!st && (!(X = malloc(n * d * sizeof *X)) || !(y = malloc(n * sizeof *y))))
        st = sl_error(SL_ENOMEM, "out of memory for %s", what);
    if (!st) st = sl_dist_sample(dist, seed, n, X);
    t_sample = cli_now() - t0;
    if (!st) st = sl_network_alloc(k, d, o.act, &net);
    if (!st) st = sl_network_set_w(net, v[SWEEP_W], sl_rng_derive(seed, STREAM_W));
    if (!st) st = sl_network_set_a(net, v[SWEEP_A], sl_rng_derive(seed, STREAM_A));
    if (!st)
        st = sl_network_label(net, n, X, strtod(v[SWEEP_NOISE], NULL),
                              sl_rng_derive(seed, STREAM_NOISE), y);
    t_plant = cli_now() - t0 - t_sample;
    if (!st) {
        if (o.score == &sl_score_exact) o.score_opt.dist = dist;
        o.truth = net;
        st = sl_recover(&o, n, d, X, y, &r);
    }
    if (!st) {
        put_measures(&t, run, r, k);
        /* The refit passes' seconds go with the moments they estimate. */
        cli_text_put(&t, ",%.3f,%.3f,%.3f,%.3f,%.3f,%.3f", t_sample, t_plant, r->seconds_scores,
                     r->seconds_moments + r->seconds_refit, r->seconds_sgd,
                     r->seconds_second_layer);
    } else {
        put_failure(&t, sl_last_error());
        cli_text_put(&t, ",%.3f,%.3f,nan,nan,nan,nan", t_sample, t_plant);
    }
    cli_text_put(&t, ",%.3f\n", cli_now() - t0);
    sl_recover_result_free(r);
    sl_network_free(net);
    sl_dist_free(dist);
    free(X);
    free(y);
    if (t.failed) {
        free(t.s);
        return sweep_message(CLI_EXIT_FAILURE, "out of memory while formatting a row");
    }
    *row = t.s;
    *len = t.len;
    return 0;
}

/* ---- files ---------------------------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The whole file in *buf (NUL-terminated) of *len bytes; -1 with errno set
 * on failure. */
static int read_file(const char *path, char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t got = fread(b + n, 1, cap - n - 1, f);
        n += got;
        if (n + 1 < cap) break;
        char *nb = realloc(b, cap * 2);
        if (!nb) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    int err = !b ? ENOMEM : ferror(f) ? EIO : 0;
    fclose(f);
    if (err) {
        free(b);
        errno = err;
        return -1;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

/* Replaces path by the n bytes of data: a temporary file beside it, synced,
 * renamed over it, and the directory synced, so the file is either the old
 * one or the new one whatever happens. */
static int replace_file(const char *path, const char *data, size_t n) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return sweep_message(CLI_EXIT_FAILURE, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return sweep_message(CLI_EXIT_FAILURE, "cannot create a temporary file beside %s: %s", path,
                             strerror(e));
    }
    /* mkstemp creates the file 0600: give it the mode of the file it
     * replaces, or that of a new file under the umask, as other outputs get. */
    struct stat old;
    const mode_t mask = umask(0);
    umask(mask);
    const mode_t mode = stat(path, &old) == 0 ? old.st_mode & 07777 : 0666 & ~mask;
    int bad = fchmod(fd, mode) || write_all(fd, data, n) || fsync(fd);
    int e = errno;
    bad = close(fd) || bad;
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        unlink(tmp);
        free(tmp);
        return sweep_message(CLI_EXIT_FAILURE, "cannot write %s: %s", path, strerror(e));
    }
    free(tmp);
    /* The rename itself survives a crash once the directory is synced. */
    char *dir = malloc(plen + 2);
    if (dir) {
        strcpy(dir, path);
        char *slash = strrchr(dir, '/');
        if (slash)
            slash[slash == dir ? 1 : 0] = '\0';
        else
            strcpy(dir, ".");
        int dfd = open(dir, O_RDONLY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return 0;
}

/* Where field `index` of a CSV line starts, or NULL when the line has fewer
 * fields; *flen gets its length (quotes included). */
static const char *csv_field(const char *line, size_t len, size_t index, size_t *flen) {
    size_t i = 0, field = 0;
    for (;;) {
        size_t start = i;
        if (i < len && line[i] == '"') {
            for (++i; i < len; ++i)
                if (line[i] == '"') {
                    if (i + 1 < len && line[i + 1] == '"')
                        ++i;
                    else
                        break;
                }
            if (i < len) ++i;
        }
        while (i < len && line[i] != ',') ++i;
        if (field == index) {
            *flen = i - start;
            return line + start;
        }
        if (i >= len) return NULL;
        ++i;
        ++field;
    }
}

/* The results' header without the columns of the parameters in the mask
 * skip (bit p for parameter p; 0: the current header). The columns added
 * since results files were first written: refit, then s4_thin, then
 * shrink_min, then swap. */
static char *header_line(uint32_t skip) {
    const char *names[SWEEP_NPARAM + NMETRICS];
    size_t m = 0;
    for (int i = 0; i < SWEEP_NPARAM; ++i)
        if (!(skip >> i & 1u)) names[m++] = sweep_param_name(i);
    for (size_t i = 0; i < NMETRICS; ++i) names[m++] = metric_names[i];
    return sweep_csv_join(names, m);
}

#define BIT(p) (UINT32_C(1) << (p))
/* Older headers, newest first, and what their runs had where a column is
 * missing: on the projected route with estimated scores (the only runs
 * these columns apply to; shrink_min only with llsfe) no refit passes, the
 * gauss thin rule, no lowest shrink and no swap rounds; "-" elsewhere. */
static const uint32_t old_headers[] = {BIT(SWEEP_SWAP), BIT(SWEEP_SHRINK_MIN) | BIT(SWEEP_SWAP),
                                       BIT(SWEEP_S4_THIN) | BIT(SWEEP_SHRINK_MIN) | BIT(SWEEP_SWAP),
                                       BIT(SWEEP_REFIT) | BIT(SWEEP_S4_THIN) |
                                           BIT(SWEEP_SHRINK_MIN) | BIT(SWEEP_SWAP)};

static const char *missing_value(int param, int projected_estimated, int llsfe) {
    if (!projected_estimated) return SWEEP_NOT_APPLICABLE;
    if (param == SWEEP_REFIT) return "0";
    if (param == SWEEP_S4_THIN) return "gauss";
    if (param == SWEEP_SWAP) return "0";
    return llsfe ? "0" : SWEEP_NOT_APPLICABLE;
}

static int field_is(const char *line, size_t len, size_t index, const char *text) {
    size_t flen = 0;
    const char *f = csv_field(line, len, index, &flen);
    return f && flen == strlen(text) && strncmp(f, text, flen) == 0;
}

/* A results file from before the columns in the mask missing, its header
 * old (the first line that is neither blank nor a comment), rewritten with
 * them (missing_value). Returns 0 and the new text in *out (free it), or
 * an exit status. Rows keep their order and text. */
static int add_columns(const char *path, const char *buf, size_t len, const char *header,
                       uint32_t missing, char **out, size_t *outlen) {
    const size_t extra = 16 * SWEEP_NPARAM;
    size_t cap = len + strlen(header) + 16, lines = 1;
    for (size_t i = 0; i < len; ++i) lines += buf[i] == '\n';
    cap += lines * extra;
    char *o = malloc(cap), *row = malloc(len + extra + 1), *tmp = malloc(len + extra + 1);
    if (!o || !row || !tmp) {
        free(o);
        free(row);
        free(tmp);
        return sweep_message(CLI_EXIT_FAILURE, "out of memory");
    }
    size_t m = 0, lineno = 0;
    int seen_header = 0, status = 0;
    for (size_t i = 0; i < len && !status;) {
        const char *line = buf + i;
        size_t n = strcspn(line, "\n"), body = n;
        i += n + (i + n < len);
        ++lineno;
        if (body > 0 && line[body - 1] == '\r') --body;
        if (body > 0 && line[0] != '#' && seen_header) {
            const int projected_estimated =
                !field_is(line, body, SWEEP_LOSS, "l2") &&
                !field_is(line, body, SWEEP_SCORE, "exact") &&
                !field_is(line, body, SWEEP_SCORE, SWEEP_NOT_APPLICABLE) &&
                !field_is(line, body, SWEEP_S4, SWEEP_NOT_APPLICABLE);
            const int llsfe = field_is(line, body, SWEEP_SCORE, "llsfe");
            /* The columns in increasing order: the field at a missing
             * column's index starts where its value goes. */
            memcpy(row, line, n);
            size_t rn = n, rbody = body;
            for (int p = 0; p < SWEEP_NPARAM && !status; ++p) {
                if (!(missing >> p & 1u)) continue;
                size_t flen = 0;
                const char *at = csv_field(row, rbody, (size_t)p, &flen);
                if (!at) {
                    status = sweep_message(CLI_EXIT_FAILURE,
                                           "%s:%zu: a row without the columns of its header", path,
                                           lineno);
                    break;
                }
                const size_t pre = (size_t)(at - row);
                const char *val = missing_value(p, projected_estimated, llsfe);
                const size_t vl = strlen(val);
                memcpy(tmp, row, pre);
                memcpy(tmp + pre, val, vl);
                tmp[pre + vl] = ',';
                memcpy(tmp + pre + vl + 1, at, rn - pre);
                rn += vl + 1;
                rbody += vl + 1;
                memcpy(row, tmp, rn);
            }
            memcpy(o + m, row, rn);
            m += rn;
        } else if (body == 0 || line[0] == '#' || seen_header) {
            memcpy(o + m, line, n);
            m += n;
        } else {
            const size_t hl = strlen(header);
            memcpy(o + m, header, hl);
            m += hl;
            seen_header = 1;
        }
        if (line + n < buf + len) o[m++] = '\n';
    }
    free(row);
    free(tmp);
    if (status) {
        free(o);
        return status;
    }
    o[m] = '\0';
    *out = o;
    *outlen = m;
    return 0;
}

typedef struct {
    const char *key;
    size_t run;
} key_entry;

static int compare_entries(const void *a, const void *b) {
    return strcmp(((const key_entry *)a)->key, ((const key_entry *)b)->key);
}

/* Notes what a results row says about its run. */
static void note_row(sweep_state *s, size_t run, const char *line, size_t len) {
    size_t flen = 0;
    const char *status = csv_field(line, len, COL_STATUS, &flen);
    const char *err = csv_field(line, len, COL_ERR_MAX, &flen);
    s->have[run] = 1;
    s->failed[run] = !(status && strncmp(status, "ok,", 3) == 0);
    s->err_max[run] = NAN;
    if (!s->failed[run] && err) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)(flen < 63 ? flen : 63), err);
        s->err_max[run] = strtod(buf, NULL);
    }
}

/* Reads the results file: drops a partial last line, checks the header,
 * marks the runs it holds; creates the file with its header when it does
 * not exist. Then opens it for appending. */
static int open_results(sweep_state *s) {
    const char *path = s->output;
    char *header = header_line(0);
    char *buf = NULL;
    size_t len = 0;
    key_entry *index = NULL;
    int status = 0;
    if (!header) {
        status = sweep_message(CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    if (read_file(path, &buf, &len) != 0) {
        if (errno != ENOENT) {
            status = sweep_message(CLI_EXIT_FAILURE, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        len = 0;
    }
    /* A last line without its line break was cut by a kill: every row is
     * written whole in one write(), so it holds no finished run. */
    if (len > 0 && buf[len - 1] != '\n') {
        size_t keep = len;
        while (keep > 0 && buf[keep - 1] != '\n') --keep;
        if (!s->dry_run) {
            if ((status = replace_file(path, buf, keep))) goto done;
            sweep_message(0, "note: dropped the unfinished last line of %s (%zu bytes)", path,
                          len - keep);
        }
        len = keep;
        buf[len] = '\0';
    }
    {
        /* A file from before some of the columns added since (old_headers)
         * gets them (rewritten in place, atomically; not on a dry run). */
        size_t at = 0;
        while (at < len && (buf[at] == '\n' || buf[at] == '\r' || buf[at] == '#'))
            at += buf[at] == '#' ? strcspn(buf + at, "\n") : 1;
        uint32_t missing = 0;
        for (size_t h = 0; h < sizeof old_headers / sizeof *old_headers && !missing; ++h) {
            char *old = header_line(old_headers[h]);
            if (!old) {
                status = sweep_message(CLI_EXIT_FAILURE, "out of memory");
                goto done;
            }
            const size_t olen = strlen(old);
            if (at + olen <= len && strncmp(buf + at, old, olen) == 0 &&
                (at + olen == len || buf[at + olen] == '\n' || buf[at + olen] == '\r'))
                missing = old_headers[h];
            free(old);
        }
        if (missing) {
            char *nb = NULL;
            size_t nlen = 0;
            if ((status = add_columns(path, buf, len, header, missing, &nb, &nlen))) goto done;
            if (!s->dry_run) {
                if ((status = replace_file(path, nb, nlen))) {
                    free(nb);
                    goto done;
                }
                if (missing & BIT(SWEEP_REFIT))
                    sweep_message(0,
                                  "note: added the refit column to %s (its runs on the projected "
                                  "route with estimated scores had no refit passes: 0)",
                                  path);
                if (missing & BIT(SWEEP_S4_THIN))
                    sweep_message(0,
                                  "note: added the s4_thin column to %s (its runs on the "
                                  "projected route with estimated scores had the gauss rule)",
                                  path);
                if (missing & BIT(SWEEP_SHRINK_MIN))
                    sweep_message(0,
                                  "note: added the shrink_min column to %s (its runs on the "
                                  "projected route with llsfe scores had none: 0)",
                                  path);
                if (missing & BIT(SWEEP_SWAP))
                    sweep_message(0,
                                  "note: added the swap column to %s (its runs on the projected "
                                  "route with estimated scores had no swap rounds: 0)",
                                  path);
            }
            free(buf);
            buf = nb;
            len = nlen;
        }
    }
    index = malloc((s->plan.nruns ? s->plan.nruns : 1) * sizeof *index);
    if (!index) {
        status = sweep_message(CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < s->plan.nruns; ++i) index[i] = (key_entry){s->plan.keys[i], i};
    qsort(index, s->plan.nruns, sizeof *index, compare_entries);
    const size_t hlen = strlen(header);
    int have_header = 0;
    size_t lineno = 0;
    char *keybuf = NULL;
    for (size_t i = 0; i < len;) {
        char *line = buf + i;
        size_t n = strcspn(line, "\n");
        i += n + 1;
        ++lineno;
        if (n > 0 && line[n - 1] == '\r') --n;
        if (n == 0 || line[0] == '#') continue;
        if (!have_header) {
            if (n != hlen || strncmp(line, header, hlen) != 0) {
                status = sweep_message(CLI_EXIT_FAILURE,
                                       "%s:%zu: the columns differ from those of this sweep "
                                       "(another program's file, or another version's): give "
                                       "another results file",
                                       path, lineno);
                goto done;
            }
            have_header = 1;
            continue;
        }
        size_t flen;
        const char *last = csv_field(line, n, SWEEP_NPARAM + NMETRICS - 1, &flen);
        if (!last || last + flen != line + n) {
            status = sweep_message(CLI_EXIT_FAILURE,
                                   "%s:%zu: a row without the %zu columns of the header", path,
                                   lineno, (size_t)SWEEP_NPARAM + NMETRICS);
            goto done;
        }
        /* The key: the parameter fields, up to the comma before status. */
        const char *status_field = csv_field(line, n, COL_STATUS, &flen);
        size_t klen = (size_t)(status_field - line) - 1;
        char *kb = realloc(keybuf, klen + 1);
        if (!kb) {
            free(keybuf);
            status = sweep_message(CLI_EXIT_FAILURE, "out of memory");
            goto done;
        }
        keybuf = kb;
        memcpy(keybuf, line, klen);
        keybuf[klen] = '\0';
        key_entry probe = {keybuf, 0};
        key_entry *hit = s->plan.nruns
                             ? bsearch(&probe, index, s->plan.nruns, sizeof *index, compare_entries)
                             : NULL;
        if (hit) {
            if (!s->have[hit->run]) note_row(s, hit->run, line, n);
        } else {
            ++s->other_rows;
        }
    }
    free(keybuf);
    if (s->dry_run) goto done;
    if (!have_header) {
        /* New (or empty): the header, written atomically. */
        size_t need = hlen + 2;
        char *h = malloc(need);
        if (!h) {
            status = sweep_message(CLI_EXIT_FAILURE, "out of memory");
            goto done;
        }
        snprintf(h, need, "%s\n", header);
        status = replace_file(path, h, hlen + 1);
        free(h);
        if (status) goto done;
    }
    s->fd = open(path, O_WRONLY | O_APPEND);
    if (s->fd < 0)
        status = sweep_message(CLI_EXIT_FAILURE, "cannot open %s: %s", path, strerror(errno));
done:
    free(header);
    free(buf);
    free(index);
    return status;
}

/* ---- progress ----------------------------------------------------------------------------- */

static void format_duration(double sec, char *buf, size_t len) {
    if (!(sec >= 0.0) || sec > 1e8) {
        snprintf(buf, len, "?");
        return;
    }
    unsigned long t = (unsigned long)(sec + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, len, "%lu:%02lu", t / 60, t % 60);
}

static void bar_draw(bar *b, int final) {
    if (!b->enabled || b->total == 0) return;
    const double t = cli_now();
    const int decile = (int)(10 * b->done / b->total);
    if (b->tty) {
        if (!final && t - b->last_draw < 0.2) return;
    } else if (b->shown && decile == b->last_decile && !final) {
        return;
    }
    b->last_draw = t;
    b->last_decile = decile;
    char bars[21];
    const size_t filled = 20 * b->done / b->total;
    for (size_t i = 0; i < 20; ++i) bars[i] = i < filled ? '#' : '-';
    bars[20] = '\0';
    char elapsed[32], eta[32];
    const double spent = t - b->start;
    format_duration(spent, elapsed, sizeof elapsed);
    if (b->done)
        format_duration(spent / (double)b->done * (double)(b->total - b->done), eta, sizeof eta);
    else
        snprintf(eta, sizeof eta, "?");
    fprintf(stderr, "%sscoreloss sweep: [%s] %zu/%zu runs, %s elapsed, ETA %s%s",
            b->tty ? "\r" : "", bars, b->done, b->total, elapsed, eta, b->tty ? "  " : "\n");
    fflush(stderr);
    b->shown = 1;
}

static void bar_finish(bar *b) {
    if (b->enabled && b->shown && b->tty) {
        fprintf(stderr, "\n");
        fflush(stderr);
    }
    b->shown = 0;
}

int sweep_record(sweep_state *s, size_t run, const char *row, size_t len) {
    if (write_all(s->fd, row, len) != 0 || fsync(s->fd) != 0) {
        int e = errno;
        bar_finish(&s->progress);
        return sweep_message(CLI_EXIT_FAILURE, "cannot append to %s: %s", s->output, strerror(e));
    }
    note_row(s, run, row, len - 1);
    ++s->recorded;
    if (s->failed[run]) ++s->failed_now;
    ++s->progress.done;
    bar_draw(&s->progress, s->progress.done == s->progress.total);
    return 0;
}

/* ---- the summary ----------------------------------------------------------------------- */

/* Cells: consecutive runs of the plan with the same parameters but the seed
 * (the plan lists a cell's seeds together). */
static void print_summary(const sweep_state *s) {
    const sweep_plan *p = &s->plan;
    int shown_params[SWEEP_NPARAM];
    int nshown = 0;
    for (int i = 0; i < SWEEP_SEED; ++i)
        if (s->cfg.param[i].count > 1) shown_params[nshown++] = i;
    size_t width[SWEEP_NPARAM];
    for (int j = 0; j < nshown; ++j) {
        width[j] = strlen(sweep_param_name(shown_params[j]));
        for (size_t r = 0; r < p->nruns; ++r) {
            size_t w = strlen(p->runs[r].value[shown_params[j]]);
            if (w > width[j]) width[j] = w;
        }
    }
    printf("err_max over the seeds of each cell (mean and standard error):\n");
    for (int j = 0; j < nshown; ++j)
        printf("%-*s  ", (int)width[j], sweep_param_name(shown_params[j]));
    printf("%7s  %10s  %10s  %6s\n", "seeds", "err_max", "se", "failed");
    for (size_t a = 0; a < p->nruns;) {
        const char *ka = p->keys[a];
        const size_t prefix = (size_t)(strrchr(ka, ',') - ka);
        size_t b = a + 1;
        while (b < p->nruns && strncmp(p->keys[b], ka, prefix + 1) == 0 &&
               strchr(p->keys[b] + prefix + 1, ',') == NULL)
            ++b;
        size_t have = 0, ok = 0, failed = 0;
        double mean = 0.0, m2 = 0.0;
        for (size_t r = a; r < b; ++r) {
            if (!s->have[r]) continue;
            ++have;
            if (s->failed[r] || isnan(s->err_max[r])) {
                failed += s->failed[r];
                continue;
            }
            ++ok;
            const double delta = s->err_max[r] - mean;
            mean += delta / (double)ok;
            m2 += delta * (s->err_max[r] - mean);
        }
        for (int j = 0; j < nshown; ++j)
            printf("%-*s  ", (int)width[j], p->runs[a].value[shown_params[j]]);
        char seeds[32], mtext[32], setext[32];
        snprintf(seeds, sizeof seeds, "%zu/%zu", have, b - a);
        if (ok)
            snprintf(mtext, sizeof mtext, "%.4g", mean);
        else
            snprintf(mtext, sizeof mtext, "-");
        if (ok > 1)
            snprintf(setext, sizeof setext, "%.2g", sqrt(m2 / (double)(ok - 1) / (double)ok));
        else
            snprintf(setext, sizeof setext, "-");
        printf("%7s  %10s  %10s  %6zu\n", seeds, mtext, setext, failed);
        a = b;
    }
    fflush(stdout);
}

/* ---- the command ------------------------------------------------------------------------- */

/* Whether the option word a (without an inline value) is followed by its
 * value: options of the table that take one, and options the table does not
 * know (those every subcommand takes, such as --mem-limit SIZE; cli_parse
 * refuses any other) when the next word is not an option. */
static int takes_value(const char *a, const char *next) {
    if (strchr(a, '=')) return 0;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; ++i) {
        const int is_long = a[1] == '-' && strcmp(a + 2, options[i].name) == 0;
        const int is_short = a[1] != '-' && options[i].short_name == a[1] && !a[2];
        if (is_long || is_short) return (options[i].flags & CLI_VALUE) != 0;
    }
    return a[1] == '-' && next && next[0] != '-';
}

/* The configuration's path, taken out of argv (the first argument that is
 * not an option or an option's value), and the rest for cli_parse. */
static int split_args(int argc, char **argv, char **rest, int *nrest, const char **config) {
    *nrest = 0;
    *config = NULL;
    rest[(*nrest)++] = argv[0];
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1]) {
            rest[(*nrest)++] = argv[i];
            if (i + 1 < argc && takes_value(a, argv[i + 1])) rest[(*nrest)++] = argv[++i];
        } else if (!*config) {
            *config = a;
        } else {
            return sweep_message(CLI_EXIT_USAGE,
                                 "unexpected argument '%s' (one CONFIG only; see scoreloss sweep "
                                 "--help)",
                                 a);
        }
    }
    rest[*nrest] = NULL;
    return 0;
}

/* Checks what the parser could not: every distribution builds in every
 * dimension, and has exact scores where a run asks for them. */
static int check_distributions(const sweep_state *s) {
    const sweep_list *dists = &s->cfg.param[SWEEP_DIST], *ds = &s->cfg.param[SWEEP_D];
    for (size_t i = 0; i < dists->count; ++i)
        for (size_t j = 0; j < ds->count; ++j) {
            const sweep_value *dv = &dists->values[i];
            const size_t d = (size_t)strtoull(ds->values[j].text, NULL, 10);
            sl_dist *dist = NULL;
            sl_status st = sl_dist_from_spec(dv->text, d, &dist);
            if (st)
                return sweep_message(CLI_EXIT_USAGE, "%s:%u:%u: key 'dist': %s", s->config_path,
                                     dv->line, dv->col, sl_last_error());
            const unsigned need = SL_DIST_GRAD | SL_DIST_HESS;
            const int exact_scores = (sl_dist_caps(dist) & need) == need;
            sl_dist_free(dist);
            if (exact_scores) continue;
            for (size_t r = 0; r < s->plan.nruns; ++r) {
                const sweep_run *run = &s->plan.runs[r];
                if (run->value[SWEEP_DIST] == dv->text &&
                    strcmp(run->value[SWEEP_SCORE], "exact") == 0)
                    return sweep_message(CLI_EXIT_USAGE,
                                         "%s:%u:%u: key 'dist': '%s' is sample-only, but score "
                                         "exact needs its gradient and Hessian",
                                         s->config_path, dv->line, dv->col, dv->text);
            }
        }
    return 0;
}

/* Runs with larger n (times restarts) first under MPI: the long ones start
 * early, and the short ones fill the gaps at the end. */
typedef struct {
    double cost;
    size_t run;
} costed_run;

static int compare_cost(const void *a, const void *b) {
    const costed_run *x = a, *y = b;
    if (x->cost != y->cost) return x->cost > y->cost ? -1 : 1;
    return (x->run > y->run) - (x->run < y->run);
}

static int order_by_cost(sweep_state *s) {
    costed_run *c = malloc((s->npending ? s->npending : 1) * sizeof *c);
    if (!c) return sweep_message(CLI_EXIT_FAILURE, "out of memory");
    for (size_t i = 0; i < s->npending; ++i) {
        const sweep_run *r = &s->plan.runs[s->pending[i]];
        c[i].cost = strtod(r->value[SWEEP_N], NULL) * strtod(r->value[SWEEP_RESTARTS], NULL);
        c[i].run = s->pending[i];
    }
    qsort(c, s->npending, sizeof *c, compare_cost);
    for (size_t i = 0; i < s->npending; ++i) s->pending[i] = c[i].run;
    free(c);
    return 0;
}

/* Rank 0: resolves the results file, checks the distributions, reads what
 * is done and lists what is not. */
static int prepare(sweep_state *s, const cli_args *args, int nranks) {
    const char *given = cli_value(args, "output");
    s->output = given ? given : s->cfg.output;
    if (!s->output)
        return sweep_message(CLI_EXIT_USAGE,
                             "no results file: give 'output = RESULTS.csv' in %s or -o "
                             "RESULTS.csv",
                             s->config_path);
    int status = check_distributions(s);
    if (status) return status;
    const size_t nr = s->plan.nruns ? s->plan.nruns : 1;
    s->have = calloc(nr, 1);
    s->failed = calloc(nr, 1);
    s->err_max = malloc(nr * sizeof *s->err_max);
    s->pending = malloc(nr * sizeof *s->pending);
    if (!s->have || !s->failed || !s->err_max || !s->pending)
        return sweep_message(CLI_EXIT_FAILURE, "out of memory");
    for (size_t i = 0; i < s->plan.nruns; ++i) s->err_max[i] = NAN;
    if ((status = open_results(s))) return status;
    for (size_t i = 0; i < s->plan.nruns; ++i)
        if (!s->have[i]) s->pending[s->npending++] = i;
    if (nranks > 1 && (status = order_by_cost(s))) return status;
    const size_t done = s->plan.nruns - s->npending;
    char extra[320] = "";
    if (s->plan.left_out)
        snprintf(extra, sizeof extra, "; %zu combinations left out (%s)", s->plan.left_out,
                 s->plan.left_out_reason);
    if (s->plan.duplicates) {
        size_t used = strlen(extra);
        snprintf(extra + used, sizeof extra - used,
                 "; %zu combinations repeat a run once unused parameters are set to '-'",
                 s->plan.duplicates);
    }
    sweep_message(0, "%zu runs: %zu in %s, %zu to do%s%s", s->plan.nruns, done, s->output,
                  s->npending, nranks > 1 ? " over the other ranks" : "", extra);
    return 0;
}

static void state_free(sweep_state *s) {
    if (s->fd >= 0) close(s->fd);
    free(s->have);
    free(s->failed);
    free(s->err_max);
    free(s->pending);
    sweep_plan_free(&s->plan);
    sweep_config_free(&s->cfg);
}

static int run_ranks(int argc, char **argv, int rank, int nranks) {
    char **rest = malloc(((size_t)argc + 1) * sizeof *rest);
    if (!rest) return sweep_message(CLI_EXIT_FAILURE, "out of memory");
    int nrest = 0;
    const char *config = NULL;
    int status = split_args(argc, argv, rest, &nrest, &config);
    cli_args args;
    if (!status) {
        status = cli_parse(&cli_cmd_sweep, nrest, rest, &args);
        status = status == CLI_RUN ? 0 : status == 0 ? -1 : status;
    }
    free(rest);
    if (status) return status < 0 ? 0 : status;
    if (config && cli_given(&args, "config"))
        return cli_error(&args, CLI_EXIT_USAGE, "give CONFIG or --config, not both");
    if (!config) config = cli_value(&args, "config");
    if (!config)
        return cli_error(&args, CLI_EXIT_USAGE, "missing CONFIG (see scoreloss sweep --help)");

    sweep_state s;
    memset(&s, 0, sizeof s);
    s.fd = -1;
    s.config_path = config;
    s.dry_run = cli_given(&args, "dry-run");

    /* Rank 0 reads the configuration; every rank parses the same bytes. */
    char *buf = NULL;
    long long len = -1;
    if (rank == 0) {
        size_t n = 0;
        if (read_file(config, &buf, &n) == 0)
            len = (long long)n;
        else
            sweep_message(0, "cannot read %s: %s", config, strerror(errno));
    }
    if (sweep_mpi_share_bytes(&buf, &len)) {
        free(buf);
        return sweep_message(CLI_EXIT_FAILURE, "cannot share the configuration between ranks");
    }
    if (len < 0) {
        free(buf);
        return CLI_EXIT_FAILURE;
    }
    char err[600];
    if (sweep_config_parse(buf, (size_t)len, config, &s.cfg, err, sizeof err) != 0) {
        free(buf);
        return rank == 0 ? sweep_message(CLI_EXIT_USAGE, "%s", err) : CLI_EXIT_USAGE;
    }
    free(buf);
    if (sweep_plan_make(&s.cfg, &s.plan, err, sizeof err) != 0) {
        state_free(&s);
        return sweep_message(CLI_EXIT_FAILURE, "%s", err);
    }

    /* Rank 0 prepares; the others learn whether to go on. */
    int go = 0;
    if (rank == 0) {
        status = prepare(&s, &args, nranks);
        go = !status && !s.dry_run && s.npending > 0;
    }
    int shared[2] = {status, go};
    if (sweep_mpi_share_int(&shared[0]) || sweep_mpi_share_int(&shared[1])) {
        state_free(&s);
        return sweep_message(CLI_EXIT_FAILURE, "cannot share the plan between ranks");
    }
    status = shared[0];
    go = shared[1];
    if (go) {
        if (rank == 0) {
            s.progress.enabled = isatty(STDERR_FILENO) || cli_given(&args, "progress");
            s.progress.tty = isatty(STDERR_FILENO);
            s.progress.start = cli_now();
            s.progress.total = s.npending;
            s.progress.last_decile = -1;
        }
        if (nranks > 1) {
            status = rank == 0 ? sweep_mpi_master(&s, nranks) : sweep_mpi_worker(&s);
        } else {
            for (size_t i = 0; i < s.npending && !status; ++i) {
                char *row = NULL;
                size_t n = 0;
                const size_t r = s.pending[i];
                status = sweep_execute(&s, r, &row, &n);
                if (!status) status = sweep_record(&s, r, row, n);
                free(row);
            }
        }
        if (rank == 0) bar_finish(&s.progress);
    }
    if (rank == 0 && !status && !s.dry_run) {
        if (s.failed_now)
            sweep_message(0, "warning: %zu of %zu runs failed (see the status column of %s)",
                          s.failed_now, s.recorded, s.output);
        print_summary(&s);
    }
    state_free(&s);
    return status;
}

static int run(int argc, char **argv) {
    int rank = 0, nranks = 1;
    if (sweep_mpi_start(&argc, &argv, &rank, &nranks)) return CLI_EXIT_FAILURE;
    int status = run_ranks(argc, argv, rank, nranks);
    sweep_mpi_stop();
    return status;
}
