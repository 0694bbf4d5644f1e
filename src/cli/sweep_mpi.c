/* `scoreloss sweep` across MPI ranks (sweep.h): rank 0 is the master that
 * hands out one run at a time to whichever rank asks next and writes the
 * rows; ranks 1..P-1 run them. Runs differ in cost by orders of magnitude
 * (n from 10^3 to 10^6, exact against estimated scores), so a static split
 * would leave ranks idle; one message per run is cheap next to a run.
 *
 * Every rank builds the same plan from the same configuration bytes, so a
 * run is named by its index alone, and its row is the same whichever rank
 * runs it (the seed fixes every random choice; the seconds differ).
 *
 * Without MPI (the meson feature 'mpi' off or OpenMPI missing) the functions
 * describe a single process. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/sweep.h"

#ifdef SL_HAVE_MPI
#include <limits.h>

#include <mpi.h>

enum { TAG_READY = 1, TAG_ROW = 2, TAG_RUN = 3, TAG_STOP = 4, TAG_FAIL = 5 };

static int mpi_on;
#endif

/* The launchers' environment: OpenMPI, MPICH/Hydra and PMIx set these. */
static int launched_by_mpi(int *rank, int *size) {
    static const char *const sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    static const char *const ranks[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
        const char *s = getenv(sizes[i]);
        if (s) {
            const char *r = getenv(ranks[i]);
            *size = atoi(s);
            *rank = r ? atoi(r) : 0;
            return 1;
        }
    }
    return getenv("PMIX_RANK") != NULL;
}

int sweep_mpi_built(void) {
#ifdef SL_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int sweep_mpi_start(int *argc, char ***argv, int *rank, int *size) {
    *rank = 0;
    *size = 1;
    int env_rank = 0, env_size = 1;
    if (!launched_by_mpi(&env_rank, &env_size)) return 0;
#ifdef SL_HAVE_MPI
    (void)env_rank;
    (void)env_size;
    int started = 0;
    MPI_Initialized(&started);
    if (!started && MPI_Init(argc, argv) != MPI_SUCCESS) {
        sweep_message(0, "MPI failed to start (MPI_Init)");
        return 1;
    }
    mpi_on = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    return 0;
#else
    (void)argc;
    (void)argv;
    /* Several copies would each run the whole sweep into the same file. */
    if (env_size > 1) {
        if (env_rank == 0)
            sweep_message(0, "this scoreloss was built without MPI: run it without mpirun, or "
                             "rebuild with OpenMPI installed (meson option -Dmpi=enabled)");
        return 1;
    }
    return 0;
#endif
}

void sweep_mpi_stop(void) {
#ifdef SL_HAVE_MPI
    if (mpi_on) MPI_Finalize();
    mpi_on = 0;
#endif
}

int sweep_mpi_share_bytes(char **buf, long long *len) {
#ifdef SL_HAVE_MPI
    if (!mpi_on) return 0;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0 && *len > INT_MAX - 1) {
        sweep_message(0, "the configuration is too large (%lld bytes)", *len);
        *len = -1;
    }
    if (MPI_Bcast(len, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD) != MPI_SUCCESS) return 1;
    if (*len < 0) return 0;
    if (rank != 0) {
        free(*buf);
        if (!(*buf = malloc((size_t)*len + 1))) {
            sweep_message(0, "out of memory");
            MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_FAILURE);
        }
    }
    if (MPI_Bcast(*buf, (int)*len, MPI_CHAR, 0, MPI_COMM_WORLD) != MPI_SUCCESS) return 1;
    (*buf)[*len] = '\0';
#else
    (void)buf;
    (void)len;
#endif
    return 0;
}

int sweep_mpi_share_int(int *value) {
#ifdef SL_HAVE_MPI
    if (mpi_on && MPI_Bcast(value, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS) return 1;
#else
    (void)value;
#endif
    return 0;
}

#ifdef SL_HAVE_MPI

int sweep_mpi_master(sweep_state *s, int size) {
    const size_t n = sweep_pending_count(s);
    size_t next = 0;
    int active = size - 1, status = 0;
    char *buf = NULL;
    size_t cap = 0;
    while (active > 0) {
        MPI_Status ms;
        int count = 0;
        MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &ms);
        MPI_Get_count(&ms, MPI_CHAR, &count);
        if ((size_t)count + 1 > cap) {
            char *nb = realloc(buf, (size_t)count + 1);
            if (!nb) {
                sweep_message(0, "out of memory");
                MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_FAILURE);
            }
            buf = nb;
            cap = (size_t)count + 1;
        }
        MPI_Recv(buf, count, MPI_CHAR, ms.MPI_SOURCE, ms.MPI_TAG, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
        if (ms.MPI_TAG == TAG_ROW && count > 8) {
            uint64_t run;
            memcpy(&run, buf, sizeof run);
            /* After a failure to write, later rows are dropped: they are not
             * in the file, so a resumed sweep runs them again. */
            if (!status) status = sweep_record(s, (size_t)run, buf + 8, (size_t)count - 8);
        } else if (ms.MPI_TAG == TAG_FAIL) {
            status = CLI_EXIT_FAILURE; /* the worker printed why */
        }
        if (!status && next < n) {
            uint64_t run = sweep_pending_run(s, next++);
            MPI_Send(&run, 1, MPI_UINT64_T, ms.MPI_SOURCE, TAG_RUN, MPI_COMM_WORLD);
        } else {
            MPI_Send(NULL, 0, MPI_CHAR, ms.MPI_SOURCE, TAG_STOP, MPI_COMM_WORLD);
            --active;
        }
    }
    free(buf);
    return status;
}

int sweep_mpi_worker(const sweep_state *s) {
    MPI_Send(NULL, 0, MPI_CHAR, 0, TAG_READY, MPI_COMM_WORLD);
    for (;;) {
        MPI_Status ms;
        MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &ms);
        if (ms.MPI_TAG == TAG_STOP) {
            MPI_Recv(NULL, 0, MPI_CHAR, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            return 0;
        }
        uint64_t run = 0;
        MPI_Recv(&run, 1, MPI_UINT64_T, 0, TAG_RUN, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        char *row = NULL, *msg = NULL;
        size_t len = 0;
        if (sweep_execute(s, (size_t)run, &row, &len) != 0 || len > INT_MAX - 8 ||
            !(msg = malloc(len + 8))) {
            free(row);
            MPI_Send(NULL, 0, MPI_CHAR, 0, TAG_FAIL, MPI_COMM_WORLD);
            continue;
        }
        memcpy(msg, &run, 8);
        memcpy(msg + 8, row, len);
        MPI_Send(msg, (int)(len + 8), MPI_CHAR, 0, TAG_ROW, MPI_COMM_WORLD);
        free(msg);
        free(row);
    }
}

#else

int sweep_mpi_master(sweep_state *s, int size) {
    (void)s;
    (void)size;
    return sweep_message(CLI_EXIT_FAILURE, "internal error: no MPI");
}

int sweep_mpi_worker(const sweep_state *s) {
    (void)s;
    return sweep_message(CLI_EXIT_FAILURE, "internal error: no MPI");
}

#endif
