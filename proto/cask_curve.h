/*  cask_curve.h - CurveZMQ for the sockets of a cask process: encryption,
    and only the keys a directory allows.

    A curve holds this process's key pair (a certificate made by
    cask-keygen: czmq's zcert format, FILE with the public key and
    FILE_secret with both), the public keys of the servers it connects to
    (the broker's, and the one pair all workers of a cluster share for
    their peer sockets), and, for a process that serves, the directory of
    the public certificates it lets in.

    A server socket (the broker's ROUTER, a worker's peer ROUTER) gets
    ZMQ_CURVE_SERVER with this pair, and the curve starts a ZAP handler
    (RFC 27) in the socket's context: a thread with a REP socket on
    inproc://zeromq.zap.01 that answers 200 to a CURVE client whose public
    key is in a certificate of the directory, and 400 to any other, which
    libzmq then disconnects before a single message of it is read. The
    directory is read again for a handshake when more than a second has
    passed since it was last read: adding or removing a certificate takes
    effect within a second, for new connections.

    Why not czmq's zauth: ZAP is per ZeroMQ context, and zauth serves
    czmq's own global context only, while every cask socket lives in a
    context of its own (zmq_ctx_new); libzmq lets any CURVE client in when
    no handler answers in the socket's context. zauth's actor would also
    start czmq's context, which takes SIGINT and SIGTERM from the broker's
    and worker's own handlers.

    Not thread-safe, except that the ZAP handler runs on its own thread.
*/
#ifndef CASK_CURVE_H_INCLUDED
#define CASK_CURVE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  The ZAP domain of cask's server sockets.
#define CASK_CURVE_DOMAIN "cask"
//  A public key as Z85 text: 40 characters.
#define CASK_CURVE_KEY_LEN 40

typedef struct _cask_curve_t cask_curve_t;

//  Creates an empty curve. log_name names the lines of its log on stderr
//  (connections refused by the ZAP handler); NULL logs nothing (a client
//  library). NULL when out of memory.
cask_curve_t *cask_curve_new (const char *log_name);
//  cask_curve_close, then frees the curve and nulls *self_p. Safe on NULL
//  and twice.
void cask_curve_destroy (cask_curve_t **self_p);
//  Stops the ZAP handler and the watch, closing their sockets: call it
//  before terminating their context (zmq_ctx_term waits for every socket),
//  after closing the sockets the curve set up. The ZAP handler also stops
//  by itself when its context terminates; the watch does not (but
//  cask_curve_refusal stops it). The curve can serve and watch again
//  after. On NULL does nothing.
void cask_curve_close (cask_curve_t *self);

//  Why the last call failed; "" when none did.
const char *cask_curve_error (cask_curve_t *self);

//  Loads this process's key pair from the certificate at path (path_secret
//  holds the secret key; path may also name the secret file itself).
//  Returns 0 or -1.
int cask_curve_load (cask_curve_t *self, const char *path);
//  This process's public key as Z85 text ("" until loaded).
const char *cask_curve_public_key (cask_curve_t *self);

//  Reads a public key given as its 40 characters of Z85 text or as the
//  path of a certificate into key (CASK_CURVE_KEY_LEN + 1 bytes). Returns
//  0, or -1 with the reason in why (why_size bytes).
int cask_curve_read_key (const char *text, char *key, char *why, size_t why_size);
//  The public key of the broker to connect to, as cask_curve_read_key
//  takes it. Returns 0 or -1.
int cask_curve_set_broker_key (cask_curve_t *self, const char *text);
//  The public key of the workers' peer sockets, likewise. Returns 0 or -1.
int cask_curve_set_workers_key (cask_curve_t *self, const char *text);
//  The directory of the public certificates of the peers allowed in (the
//  secret files, NAME_secret, are skipped). It must exist. Returns 0 or -1.
int cask_curve_set_allowed (cask_curve_t *self, const char *dir);

//  Makes socket a CURVE server with this pair, before it binds, and starts
//  the ZAP handler in context (once per curve; a curve serves one context).
//  Needs the pair and the allowed directory. On NULL self does nothing.
//  Returns 0 or -1.
int cask_curve_server (cask_curve_t *self, void *context, void *socket);
//  Makes socket a CURVE client of the broker (of the workers), with this
//  pair, before it connects. On NULL self does nothing. Returns 0 or -1.
int cask_curve_to_broker (cask_curve_t *self, void *socket);
int cask_curve_to_workers (cask_curve_t *self, void *socket);

//  Watches the handshakes of socket, a CURVE client in context, so that
//  cask_curve_refusal can tell why nothing answered; before it connects.
//  A curve watches one socket at a time: this stops watching the one
//  before. On NULL self does nothing. Returns 0 or -1.
int cask_curve_watch (cask_curve_t *self, void *context, void *socket);
//  What went wrong in the handshakes of the watched socket so far: a
//  sentence (the server refused this key, or speaks no CURVE, or has
//  another key), or NULL when nothing failed that the socket could see.
//  Then stops watching.
const char *cask_curve_refusal (cask_curve_t *self);

#endif
