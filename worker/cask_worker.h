/*  cask_worker.h - a cask worker: runs tasks the broker sends, keeps their
    results and serves them to peers.

    One thread owns every socket: a DEALER to the broker, a ROUTER on the
    worker's peer endpoint (GET, STATUS from other workers and clients, and
    PUT from clients that scatter data),
    an inproc PULL for finished tasks, and a DEALER to each other worker it
    fetches dependencies from. N executor threads run the task functions.

    The broker may also take back queued tasks (STEAL), have the worker
    copy results from a peer (COPY) and tell it to leave (RETIRE).
*/
#ifndef CASK_WORKER_H_INCLUDED
#define CASK_WORKER_H_INCLUDED

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include "cask_curve.h"
#include "cask_proto.h"

typedef struct _cask_worker_t cask_worker_t;

//  Past this fraction of its memory limit, a worker spills the results it
//  holds to disk, least recently used first.
#define CASK_WORKER_SPILL_FRACTION 0.6
//  Past this fraction of the limit (its resident memory), it pauses: no
//  new task until it is back under the next one.
#define CASK_WORKER_PAUSE_FRACTION 0.8
#define CASK_WORKER_RESUME_FRACTION 0.7

typedef struct {
    const char *broker;         //  broker endpoint, "tcp://host:port"
    const char *listen;         //  peer endpoint to bind, "tcp://127.0.0.1:*"
    const char *dir;            //  existing directory for task libraries
    const char *name;           //  for logs, HELLO and REPORT; tasks may ask for it
    uint32_t nthreads;          //  executor threads, at least 1
    uint64_t memory_limit;      //  bytes, as told to the broker
    int fetch_timeout_ms;       //  a peer silent this long fails its fetches
    uint32_t heartbeat_ms;      //  heartbeat the broker this often (0: CASK_HEARTBEAT_MS)
    //  The process is the worker's own (cask-worker): its resident memory
    //  is watched against memory_limit (pause, and end past it). A worker
    //  embedded in another program leaves this false: only its results
    //  are held to the limit (they spill)
    bool own_process;
    //  Under a nanny: the id of the worker whose process died before this
    //  one (0: none), how it died and the keys of the tasks it was running
    //  (nrunning str8 entries), told the broker in the first HELLO (copied);
    //  a descriptor the worker writes each id it is given to (u32), so the
    //  nanny knows whose death to report (0: none); and memory shared with
    //  the nanny, nthreads slots of CASK_MAX_KEY + 1 bytes, where each
    //  executor writes the key of the task it runs ("" when idle; NULL: none)
    uint32_t replaces;
    const char *death;
    uint16_t nrunning;
    cask_str_t running;
    int nanny_fd;
    char *slots;
    bool verbose;               //  log info and debug lines too
    //  What the worker declares in HELLO (--resources): at most
    //  CASK_MAX_RESOURCES, unique names of 1 to 255 bytes, amounts in
    //  (0, 1e300] (what the codec accepts)
    uint8_t nresources;
    cask_resource_t resources [CASK_MAX_RESOURCES];
    volatile sig_atomic_t *interrupted;     //  run returns once nonzero; may be NULL
    //  CurveZMQ, or NULL: the peer socket is a CURVE server with curve's
    //  pair letting in the keys it allows (a ZAP handler in the worker's
    //  context), and the worker is a CURVE client of the broker and of its
    //  peers with the broker's and the workers' keys. Not copied: it must
    //  outlive the worker
    cask_curve_t *curve;
} cask_worker_config_t;

//  Binds the peer socket, starts the executors and says HELLO to the
//  broker. The strings of config (resource names too) are copied; the
//  interrupted flag is read until the worker is destroyed. Returns the
//  worker, or NULL (the reason is logged).
cask_worker_t *cask_worker_new (const cask_worker_config_t *config);
//  Says BYE, stops the executors (a task still running after a short grace
//  is abandoned, and with it the cleanup it could still use), closes the
//  sockets, frees everything and nulls *self_p. Safe twice.
void cask_worker_destroy (cask_worker_t **self_p);
//  Serves until *config->interrupted is set, or until the broker retires
//  the worker (RETIRE: it has taken what it needed from here), or until
//  the context fails. Returns 0 (interrupted or retired: destroy the
//  worker, which says BYE), or -1 on a socket failure.
int cask_worker_run (cask_worker_t *self);
//  True when run returned because a task ran past its time limit and does
//  not return: the process should exit for its nanny to start it again.
bool cask_worker_stuck (cask_worker_t *self);
//  True when run returned because the process went past its memory limit:
//  it should exit for its nanny to start it again.
bool cask_worker_over_memory (cask_worker_t *self);
//  The peer endpoint others connect to.
const char *cask_worker_endpoint (cask_worker_t *self);

#endif
