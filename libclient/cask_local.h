/*  cask_local.h - an embedded local cluster (private to libcask).

    Starts cask-broker on a free loopback port and nworkers cask-worker
    processes pointed at it, as children of the calling process, each with
    its output in a log file of a fresh temp dir (the workers' dirs live
    there too); more workers can be added later, alike. The children die
    with the process that started them, even when it is SIGKILLed
    (PR_SET_PDEATHSIG; see cask_local.c for the one catch: it follows the
    thread that called cask_local_new, or cask_local_add_worker).

    Binaries: $CASK_BROKER_BIN and $CASK_WORKER_BIN, else cask-broker and
    cask-worker in $CASK_BIN_DIR, else in the install bindir compiled in
    (CASK_BINDIR), else on $PATH.
*/
#ifndef CASK_LOCAL_H_INCLUDED
#define CASK_LOCAL_H_INCLUDED

#include <stddef.h>
#include <sys/types.h>

typedef struct _cask_local_t cask_local_t;

//  Dask's defaults for a machine of ncores cores when nworkers or nthreads
//  is 0: up to 4 cores a worker per core of 1 thread, above that the
//  smallest factor of ncores at least its square root as workers and the
//  rest as threads; one of the two given, the other covers the cores.
void cask_local_defaults (long ncores, size_t *nworkers, int *nthreads);

//  Starts the broker and the workers and waits up to timeout_ms (-1: for
//  ever) for the broker to be bound; does not wait for the workers to
//  join. Returns the cluster, or NULL with the reason in error (then no
//  process is left running and the temp dir is gone).
cask_local_t *cask_local_new (size_t nworkers, int nthreads, int timeout_ms,
                              char *error, size_t error_size);
//  Stops the workers and then the broker (SIGTERM, a few seconds' grace,
//  then SIGKILL), reaps them, removes the temp dir and nulls *self_p.
//  Safe twice.
void cask_local_destroy (cask_local_t **self_p);

//  Starts one more worker like the first ones (threads, memory limit, log
//  and dir in the temp dir), named "worker-N" with an N never used before.
//  Does not wait for it to join. Returns 0, or -1 with the reason in error.
int cask_local_add_worker (cask_local_t *self, char *error, size_t error_size);
//  Marks the worker named name (its --name, as the broker reports it) as
//  told to leave, for cask_local_reap. An unknown name does nothing.
void cask_local_leaving (cask_local_t *self, const char *name);
//  Waits up to grace_ms for the workers marked leaving to exit by
//  themselves, SIGKILLs those that did not, reaps them all by pid and
//  forgets them.
void cask_local_reap (cask_local_t *self, int grace_ms);

//  The broker's endpoint ("tcp://127.0.0.1:PORT").
const char *cask_local_address (cask_local_t *self);
//  Number of worker processes it has, not counting those reaped.
size_t cask_local_nworkers (cask_local_t *self);
//  Returns 0 while the broker and every worker run, else -1 with which one
//  exited and the last line of its log in error. A worker that exited is
//  reaped and forgotten: quietly when its status is 0 (it left when told
//  to), else after it is reported, once.
int cask_local_check (cask_local_t *self, char *error, size_t error_size);

#endif
