/* `scoreloss sweep` (internal): what the command (cmd_sweep.c) and its
 * message-passing part (sweep_mpi.c) share. Rank 0, or the only process,
 * owns the results file; every rank can run any run of the plan. */
#ifndef SL_CLI_SWEEP_H
#define SL_CLI_SWEEP_H

#include <stddef.h>

#include "cli/sweep_config.h"

typedef struct sweep_state sweep_state;

/* The runs still to do, in the order to hand them out. */
size_t sweep_pending_count(const sweep_state *s);
size_t sweep_pending_run(const sweep_state *s, size_t i);

/* Runs plan run `run` in this process and formats its results row (ending
 * in '\n') into a new string *row of *len bytes. A run the library refuses
 * is a row too (its status column says why); non-zero only when the sweep
 * cannot go on (out of memory), after printing the message. */
int sweep_execute(const sweep_state *s, size_t run, char **row, size_t *len);

/* Rank 0: appends a finished row to the results file (one write, then
 * fsync) and updates the progress line and the summary. Non-zero after
 * printing the message when the file cannot be written. */
int sweep_record(sweep_state *s, size_t run, const char *row, size_t len);

/* Prints "scoreloss sweep: MESSAGE" as one line on stderr and returns status. */
int sweep_message(int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- processes (sweep_mpi.c; a single process when MPI is not built) ----- */

/* 1 when this program was built with MPI. */
int sweep_mpi_built(void);
/* Starts MPI when the process was launched by mpirun (or another MPI
 * launcher), else does nothing; sets the rank and the number of processes
 * (0 and 1 without MPI). Non-zero, after printing why, when MPI fails to
 * start or several ranks were launched without MPI built in. */
int sweep_mpi_start(int *argc, char ***argv, int *rank, int *size);
void sweep_mpi_stop(void);
/* Rank 0's bytes (*buf of *len, malloc'd; *len < 0 for a failure) to every
 * rank; other ranks get a new copy. Non-zero on a communication failure. */
int sweep_mpi_share_bytes(char **buf, long long *len);
/* Rank 0's value to every rank. */
int sweep_mpi_share_int(int *value);
/* Rank 0 hands the pending runs out to ranks 1..size-1 one at a time, as
 * each asks for more, and records the rows they send back. */
int sweep_mpi_master(sweep_state *s, int size);
/* Ranks 1..size-1: ask for runs, execute them, send rows back, until told to
 * stop. */
int sweep_mpi_worker(const sweep_state *s);

#endif
