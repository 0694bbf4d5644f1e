/* libFuzzer target: the sweep configuration parser (src/cli/sweep_config.h).
 *
 * Any bytes are a configuration. The parser must fail with a one-line
 * "NAME:LINE:COL: ..." message or return lists that are not empty; a small
 * configuration is also planned, and every run's row joined as CSV. */
#include "cli/sweep_config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sweep_config cfg;
    char err[512];
    err[0] = '\0';
    int rc = sweep_config_parse((const char *)data, size, "fuzz.conf", &cfg, err, sizeof err);
    if (rc != 0) {
        FUZZ_ASSERT(strncmp(err, "fuzz.conf:", 10) == 0, "the message names the file");
        FUZZ_ASSERT(strchr(err, '\n') == NULL, "the message is one line");
        sweep_config_free(&cfg);
        return 0;
    }
    for (int p = 0; p < SWEEP_NPARAM; ++p)
        FUZZ_ASSERT(cfg.param[p].count >= 1 && cfg.param[p].values, "every list has a value");
    if (cfg.combinations <= 4096) {
        sweep_plan plan;
        if (sweep_plan_make(&cfg, &plan, err, sizeof err) == 0) {
            for (size_t r = 0; r < plan.nruns; ++r) {
                char *row = sweep_csv_join(plan.runs[r].value, SWEEP_NPARAM);
                FUZZ_ASSERT(row != NULL, "a row joins");
                free(row);
            }
            sweep_plan_free(&plan);
        }
    }
    sweep_config_free(&cfg);
    return 0;
}
