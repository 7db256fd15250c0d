/*  cask_harness.h - a real cask cluster for integration tests.

    Starts cask-broker on a free loopback port and cask-worker processes
    pointed at it, each with its output in a log file of a private temp
    directory; asks the broker or a worker for its REPORT; stops everything
    (SIGTERM, then SIGKILL after a grace period). The processes die with the
    test process whatever happens to it (PR_SET_PDEATHSIG, an atexit hook),
    and their logs are printed when a test exits without tearing its
    cluster down, which is how a failing Check test in fork mode ends.

    Binaries come from $CASK_BROKER_BIN and $CASK_WORKER_BIN (set by meson
    test), else from $CASK_BUILD_DIR/{broker,worker}. Set CASK_HARNESS_KEEP=1
    to keep the temp directory, CASK_HARNESS_VERBOSE=1 to start the
    processes with --verbose, CASK_HARNESS_VALGRIND=1 to run them under
    valgrind (memcheck, full leak check): an error or a definite or
    indirect leak in the broker or a worker then fails the test.

    The last functions are for Check tests: they fail the running test
    (ck_assert) when something goes wrong.
*/
#ifndef CASK_HARNESS_H_INCLUDED
#define CASK_HARNESS_H_INCLUDED

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <cjson/cJSON.h>
#include "cask/cask_client.h"
#include "cask_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _cask_harness_t cask_harness_t;

//  How long the harness waits for processes to come up or go away.
#define CASK_HARNESS_TIMEOUT_MS 20000

//  Starts a broker in a new temp dir and waits until it is bound. Returns
//  the harness, or NULL (the reason and the broker's log on stderr).
cask_harness_t *cask_harness_new (void);
//  cask_harness_new with extra arguments for the broker (NULL-terminated,
//  copied; kept for cask_harness_restart_broker), e.g. --curve-cert FILE.
cask_harness_t *cask_harness_new_with (const char *const *broker_extra);
//  cask_harness_new, then nworkers workers of nthreads each, then waits
//  until the broker reports them all. NULL on failure (logs on stderr).
cask_harness_t *cask_harness_start (size_t nworkers, int nthreads);
//  cask_harness_start with extra arguments for each worker (as
//  cask_harness_add_workers takes them).
cask_harness_t *cask_harness_start_with (size_t nworkers, int nthreads,
                                         const char *const *extra);
//  Stops what still runs (see cask_harness_stop), removes the temp dir
//  and nulls *self_p. Safe twice.
void cask_harness_destroy (cask_harness_t **self_p);

//  Starts n more workers of nthreads each, named "w<index>" (index counts
//  from 0 over the harness's life), extra arguments after the usual ones
//  (NULL-terminated array, or NULL). Does not wait. Returns 0 or -1.
int cask_harness_add_workers (cask_harness_t *self, size_t n, int nthreads,
                              const char *const *extra);
//  Waits until the broker reports at least n workers. Returns 0 or -1.
int cask_harness_wait_workers (cask_harness_t *self, size_t n, int timeout_ms);

//  The broker's address for clients ("tcp://127.0.0.1:PORT").
const char *cask_harness_broker (cask_harness_t *self);
//  The temp dir holding the logs and the workers' dirs.
const char *cask_harness_dir (cask_harness_t *self);
//  Number of workers started (alive or not).
size_t cask_harness_nworkers (cask_harness_t *self);
//  Process ids: the broker's, and worker index's (-1 when out of range).
pid_t cask_harness_broker_pid (cask_harness_t *self);
pid_t cask_harness_worker_pid (cask_harness_t *self, size_t index);
//  True while the broker runs (it has not exited).
bool cask_harness_broker_alive (cask_harness_t *self);
//  True while worker index runs.
bool cask_harness_worker_alive (cask_harness_t *self, size_t index);
//  Kills the broker (SIGKILL) and starts a new one on the same address,
//  which knows nothing of the old one's clients, workers and tasks.
//  Returns 0 once it is bound, or -1.
int cask_harness_restart_broker (cask_harness_t *self);
//  Sends SIGKILL to worker index (a worker dying hard). Returns 0 or -1.
int cask_harness_kill_worker (cask_harness_t *self, size_t index);

//  Connects a client to the broker (10 s timeout) and, when lib is not
//  NULL, registers that task library. NULL on failure (reason on stderr).
cask_client_t *cask_harness_client (cask_harness_t *self, const char *lib);

//  Sends STATUS to endpoint (the broker's or a worker's peer endpoint)
//  and returns the REPORT body parsed, or NULL on timeout or a bad reply.
//  The caller owns the result (cJSON_Delete).
cJSON *cask_harness_report (cask_harness_t *self, const char *endpoint,
                            int timeout_ms);
//  The broker's REPORT.
cJSON *cask_harness_broker_report (cask_harness_t *self, int timeout_ms);
//  Worker index's own REPORT, asked on its peer endpoint (found in the
//  broker's REPORT by the worker's name).
cJSON *cask_harness_worker_report (cask_harness_t *self, size_t index,
                                   int timeout_ms);
//  Peer endpoint of worker index as the broker reports it, copied into
//  buf. Returns 0 or -1.
int cask_harness_worker_endpoint (cask_harness_t *self, size_t index,
                                  char *buf, size_t size);
//  Number member name of a JSON object as int64 (path of nested object
//  names separated by '.', e.g. "tasks.memory"); fallback when missing.
int64_t cask_harness_json_int (const cJSON *json, const char *path,
                               int64_t fallback);

//  Polls the REPORT of worker index, or of the broker when index is -1,
//  until the number at path (as cask_harness_json_int) equals expect, or
//  timeout_ms passes. Returns 0 or -1; *seen (when not NULL) gets the last
//  figure read (-1: none).
int cask_harness_wait_figure (cask_harness_t *self, int index, const char *path,
                              int64_t expect, int timeout_ms, int64_t *seen);
//  Resident memory of process pid in bytes, from /proc (-1 if unknown).
int64_t cask_harness_rss (pid_t pid);

//  What a client process does once connected (see below); returns 0 or -1.
//  It runs in a forked child: it must not use Check's asserts.
typedef int (cask_harness_body_fn) (cask_client_t *client, void *arg);
//  Forks a client process: it connects to the broker, registers lib (when
//  not NULL), runs body (client, arg) and then waits, holding its client
//  and futures, until it is killed (it dies with the test process too).
//  Returns its pid once body returned 0, or -1 (a failure or no word in
//  timeout_ms; the child is then killed).
pid_t cask_harness_client_process (cask_harness_t *self, const char *lib,
                                   cask_harness_body_fn *body, void *arg,
                                   int timeout_ms);
//  Sends SIGKILL to a process of cask_harness_client_process and reaps
//  it. Returns 0 or -1.
int cask_harness_kill_process (pid_t pid);

//  Stops the cluster: SIGTERM to the workers and then the broker, waiting
//  up to grace period each, SIGKILL for any left. Returns 0 when every
//  process exited by itself with status 0, -1 otherwise (then the logs are
//  printed). Safe twice.
int cask_harness_stop (cask_harness_t *self);
//  Prints the broker's and workers' logs to stderr.
void cask_harness_print_logs (cask_harness_t *self);

//  Paths of the task libraries the tests use: libtutorial.so
//  ($CASK_TUTORIAL_LIB), the tests' own library ($CASK_TEST_LIB) and one
//  without a cask_exports table ($CASK_NOEXPORTS_LIB). Never NULL.
const char *cask_harness_tutorial_lib (void);
const char *cask_harness_test_lib (void);
const char *cask_harness_noexports_lib (void);

//  Milliseconds of a monotonic clock.
int64_t cask_harness_now_ms (void);

//  Starts a cluster of nworkers workers of nthreads threads each into
//  *self_p and, when client_p is not NULL, connects a client into
//  *client_p that registered the task library lib (none when lib is NULL).
void cask_harness_test_start (cask_harness_t **self_p, size_t nworkers, int nthreads,
                              cask_client_t **client_p, const char *lib);
//  cask_harness_test_start with extra arguments for each worker (as
//  cask_harness_add_workers takes them).
void cask_harness_test_start_with (cask_harness_t **self_p, size_t nworkers, int nthreads,
                                   const char *const *extra, cask_client_t **client_p,
                                   const char *lib);
//  Destroys *client_p (when client_p is not NULL), then stops and destroys
//  the cluster; fails the test when it did not stop cleanly.
void cask_harness_test_stop (cask_harness_t **self_p, cask_client_t **client_p);
//  Adds to tc a checked fixture (run in each test's own process) that
//  calls cask_harness_test_start with these arguments before each test
//  and cask_harness_test_stop after it. One such fixture per program.
void cask_harness_fixture (TCase *tc, cask_harness_t **self_p, size_t nworkers,
                           int nthreads, cask_client_t **client_p, const char *lib);
//  The int64 result of future, waiting up to timeout_ms; fails the test
//  with the future's error, or with client's error when future is NULL
//  (the submit failed).
int64_t cask_harness_int (cask_client_t *client, cask_future_t *future, int timeout_ms);
//  Submits the tutorial's graph on libtutorial.so: xs [i] = inc (i) for
//  i < n, ys [i] = add (xs [i], xs [i + 1]) = 2i + 3, and returns the
//  future of sum (ys), which is (n - 1) (n - 2) + 3 (n - 1): 2n tasks.
//  xs and ys (n and n - 1 entries) get new futures the caller owns.
cask_future_t *cask_harness_tutorial_graph (cask_client_t *client, size_t n,
                                            cask_future_t **xs, cask_future_t **ys);

#ifdef __cplusplus
}
#endif

#endif
