/*  cask_curve.c - CurveZMQ for the sockets of a cask process (see
    cask_curve.h).

    The ZAP handler is a plain thread with its signals blocked (SIGINT and
    SIGTERM must reach the thread that polls the process's sockets): it
    waits on its REP socket 100 ms at a time, and stops when the curve is
    destroyed or when its context terminates (ETERM). Between its start and
    its end only that thread touches the allowed keys.
*/
#include "cask_curve.h"
#include "cask_log.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_ZAP_POLL_MS 100           //  how soon the handler sees it must stop
#define S_RELOAD_MS 1000            //  the directory is read again after this
#define S_LOG_AGAIN_MS 10000        //  a refused key is logged again after this
#define S_ZAP_FRAMES 8              //  RFC 27: 7 for CURVE; more are drained
#define S_CERT_MAX 65536            //  a certificate is a few hundred bytes
#define S_REBIND_TRIES 100          //  10 ms apart

struct _cask_curve_t {
    cask_log_t *log;                //  NULL: logs nothing
    char error [512];
    bool loaded;
    char public_key [CASK_CURVE_KEY_LEN + 1];
    char secret_key [CASK_CURVE_KEY_LEN + 1];
    char broker_key [CASK_CURVE_KEY_LEN + 1];     //  "" until set
    char workers_key [CASK_CURVE_KEY_LEN + 1];
    char *allowed;                  //  directory of allowed certificates
    //  The ZAP handler, once a server socket asked for it
    void *zap_context;
    void *zap;                      //  REP on S_ZAP_ENDPOINT, the thread's
    pthread_t zap_thread;
    bool zap_running;
    atomic_bool zap_stop;
    zhashx_t *keys;                 //  allowed public key (Z85) -> certificate file name
    int64_t keys_loaded_at;         //  -1: never
    char refused_key [CASK_CURVE_KEY_LEN + 1];    //  last refusal logged, and when
    int64_t refused_at;
    //  The watched client socket
    void *watch;                    //  PAIR connected to its monitor
    unsigned watches;               //  counts them, for fresh endpoints
    char refusal [256];
};

static int
s_fail (cask_curve_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static int
s_fail (cask_curve_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
    return -1;
}

//  The certificate at path, or NULL. Only a file that names a public key
//  reaches czmq's zcert_load, whose parser prints to stderr, and leaks,
//  on a file that is not a certificate (an allowed directory may hold
//  anything).
static zcert_t *
s_cert_load (const char *path)
{
    struct stat info;
    if (stat (path, &info) || !S_ISREG (info.st_mode) || info.st_size > S_CERT_MAX)
        return NULL;
    FILE *file = fopen (path, "r");
    if (!file)
        return NULL;
    char *text = (char *) malloc (S_CERT_MAX + 1);
    size_t size = text ? fread (text, 1, S_CERT_MAX, file) : 0;
    fclose (file);
    if (text)
        text [size] = 0;
    bool named = text && strlen (text) == size && strstr (text, "public-key");
    free (text);
    return named ? zcert_load (path) : NULL;
}

cask_curve_t *
cask_curve_new (const char *log_name)
{
    cask_curve_t *self = (cask_curve_t *) calloc (1, sizeof (cask_curve_t));
    if (!self)
        return NULL;
    self->keys_loaded_at = -1;
    atomic_init (&self->zap_stop, false);
    if (log_name && !(self->log = cask_log_new (log_name, CASK_LOG_WARNING))) {
        free (self);
        return NULL;
    }
    return self;
}

//  Closes our end of the watch. The monitor of the watched socket stays
//  until that socket closes (which may have happened already: it is not
//  touched), its events dropped for want of a reader.
static void
s_unwatch (cask_curve_t *self)
{
    if (self->watch)
        zmq_close (self->watch);
    self->watch = NULL;
}

void
cask_curve_close (cask_curve_t *self)
{
    if (!self)
        return;
    if (self->zap_running) {
        atomic_store (&self->zap_stop, true);
        pthread_join (self->zap_thread, NULL);
        self->zap_running = false;
        self->zap_context = NULL;
        atomic_store (&self->zap_stop, false);
    }
    s_unwatch (self);
}

void
cask_curve_destroy (cask_curve_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cask_curve_t *self = *self_p;
    *self_p = NULL;
    cask_curve_close (self);
    zhashx_destroy (&self->keys);
    //  The secret key does not outlive its owner in freed memory
    memset (self->secret_key, 0, sizeof self->secret_key);
    free (self->allowed);
    cask_log_destroy (&self->log);
    free (self);
}

const char *
cask_curve_error (cask_curve_t *self)
{
    return self->error;
}

//  True when text is a public key in Z85 (40 characters that decode).
static bool
s_is_z85_key (const char *text)
{
    uint8_t key [32];
    return strlen (text) == CASK_CURVE_KEY_LEN && zmq_z85_decode (key, text) != NULL;
}

//  True when key is 40 '0's: czmq's text for a key a certificate lacks.
static bool
s_is_empty_key (const char *key)
{
    return strspn (key, "0") == CASK_CURVE_KEY_LEN;
}

int
cask_curve_load (cask_curve_t *self, const char *path)
{
    struct stat info;
    if (!path || !*path)
        return s_fail (self, "no certificate given");
    if (stat (path, &info))
        return s_fail (self, "cannot read the certificate %s: %s", path, strerror (errno));
    if (!S_ISREG (info.st_mode))
        return s_fail (self, "the certificate %s is not a file", path);
    zcert_t *cert = s_cert_load (path);
    if (!cert)
        return s_fail (self, "%s is not a certificate (make one with cask-keygen)", path);
    bool secret = !s_is_empty_key (zcert_secret_txt (cert));
    if (secret) {
        snprintf (self->public_key, sizeof self->public_key, "%s", zcert_public_txt (cert));
        snprintf (self->secret_key, sizeof self->secret_key, "%s", zcert_secret_txt (cert));
        self->loaded = true;
    }
    zcert_destroy (&cert);
    if (!secret)
        return s_fail (self, "the certificate %s has no secret key: it should be in %s_secret",
                       path, path);
    return 0;
}

const char *
cask_curve_public_key (cask_curve_t *self)
{
    return self->public_key;
}

int
cask_curve_read_key (const char *text, char *key, char *why, size_t why_size)
{
    struct stat info;
    *key = 0;
    if (!text || !*text) {
        snprintf (why, why_size, "no public key given");
        return -1;
    }
    //  A file of that name wins over text that happens to be Z85
    if (stat (text, &info) == 0 && S_ISREG (info.st_mode)) {
        zcert_t *cert = s_cert_load (text);
        if (cert && !s_is_empty_key (zcert_public_txt (cert)))
            snprintf (key, CASK_CURVE_KEY_LEN + 1, "%s", zcert_public_txt (cert));
        zcert_destroy (&cert);
        if (!*key) {
            snprintf (why, why_size, "%s is not a certificate (make one with cask-keygen)", text);
            return -1;
        }
        return 0;
    }
    if (s_is_z85_key (text)) {
        snprintf (key, CASK_CURVE_KEY_LEN + 1, "%s", text);
        return 0;
    }
    snprintf (why, why_size, "'%s' is neither a certificate file nor a public key "
              "(40 characters of Z85 text)", text);
    return -1;
}

int
cask_curve_set_broker_key (cask_curve_t *self, const char *text)
{
    char why [sizeof self->error];
    if (cask_curve_read_key (text, self->broker_key, why, sizeof why))
        return s_fail (self, "the broker's key: %s", why);
    return 0;
}

int
cask_curve_set_workers_key (cask_curve_t *self, const char *text)
{
    char why [sizeof self->error];
    if (cask_curve_read_key (text, self->workers_key, why, sizeof why))
        return s_fail (self, "the workers' key: %s", why);
    return 0;
}

int
cask_curve_set_allowed (cask_curve_t *self, const char *dir)
{
    struct stat info;
    if (!dir || !*dir)
        return s_fail (self, "no directory of allowed keys given");
    if (stat (dir, &info))
        return s_fail (self, "the directory of allowed keys %s: %s", dir, strerror (errno));
    if (!S_ISDIR (info.st_mode))
        return s_fail (self, "the directory of allowed keys %s is not a directory", dir);
    char *copy = strdup (dir);
    if (!copy)
        return s_fail (self, "out of memory");
    free (self->allowed);
    self->allowed = copy;
    return 0;
}

//  ---------------------------------------------------------------------
//  The ZAP handler

static bool
s_ends_with (const char *text, const char *end)
{
    size_t length = strlen (text), end_length = strlen (end);
    return length >= end_length && strcmp (text + length - end_length, end) == 0;
}

//  Reads the public key of every certificate in the allowed directory
//  anew. A file that is not a certificate is skipped; a key found twice
//  is kept once.
static void
s_keys_load (cask_curve_t *self)
{
    zhashx_purge (self->keys);
    self->keys_loaded_at = zclock_mono ();
    DIR *dir = opendir (self->allowed);
    if (!dir) {
        cask_log_print (self->log, CASK_LOG_WARNING, "cannot read the allowed keys in %s: %s",
                        self->allowed, strerror (errno));
        return;
    }
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        if (entry->d_name [0] == '.' || s_ends_with (entry->d_name, "_secret"))
            continue;
        char *path = zsys_sprintf ("%s/%s", self->allowed, entry->d_name);
        zcert_t *cert = path ? s_cert_load (path) : NULL;
        char *name = cert && !s_is_empty_key (zcert_public_txt (cert))
                   ? strdup (entry->d_name) : NULL;
        //  A key found twice is kept under its first name
        if (name && zhashx_insert (self->keys, zcert_public_txt (cert), name))
            free (name);
        zcert_destroy (&cert);
        zstr_free (&path);
    }
    closedir (dir);
}

static void
s_keys_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

//  Logs a refusal, the same key again only after S_LOG_AGAIN_MS: a client
//  that is refused tries again ten times a second.
static void
s_log_refusal (cask_curve_t *self, const char *key, const char *address, const char *why)
{
    int64_t now = zclock_mono ();
    if (strcmp (key, self->refused_key) == 0 && now - self->refused_at < S_LOG_AGAIN_MS)
        return;
    snprintf (self->refused_key, sizeof self->refused_key, "%s", key);
    self->refused_at = now;
    cask_log_print (self->log, CASK_LOG_WARNING,
                    "refused a connection from %s: %s (its attempts are logged again "
                    "after %d s)", address, why, S_LOG_AGAIN_MS / 1000);
}

static bool
s_frame_is (zmq_msg_t *frame, const char *text)
{
    size_t size = strlen (text);
    return zmq_msg_size (frame) == size && memcmp (zmq_msg_data (frame), text, size) == 0;
}

//  The text of a frame, cut to fit, for the log.
static void
s_frame_text (zmq_msg_t *frame, char *text, size_t size)
{
    size_t length = zmq_msg_size (frame) < size ? zmq_msg_size (frame) : size - 1;
    memcpy (text, zmq_msg_data (frame), length);
    text [length] = 0;
}

static int
s_send_text (void *socket, const char *text, int flags)
{
    return zmq_send (socket, text, strlen (text), flags) < 0 ? -1 : 0;
}

//  Reads one ZAP request (RFC 27) and answers it: 200 for a CURVE client
//  whose key the directory allows, 400 otherwise. Returns 0, or -1 when
//  the socket failed (errno says why).
static int
s_zap_answer (cask_curve_t *self)
{
    zmq_msg_t frames [S_ZAP_FRAMES];
    size_t count = 0;
    int more = 1, rc = 0;
    while (more) {
        zmq_msg_t *frame = &frames [count < S_ZAP_FRAMES ? count : S_ZAP_FRAMES - 1];
        if (count >= S_ZAP_FRAMES)
            zmq_msg_close (frame);          //  past what a request has: drained
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, self->zap, 0) < 0) {
            rc = -1;
            break;              //  frame stays empty, closed below with the rest
        }
        more = zmq_msg_more (frame);
        count++;
    }
    size_t held = rc ? count + 1 : count;  //  initialised frames
    held = held < S_ZAP_FRAMES ? held : S_ZAP_FRAMES;
    if (rc == 0 && count >= 6 && s_frame_is (&frames [0], "1.0")) {
        //  version, request id, domain, address, routing id, mechanism, credentials
        char key [CASK_CURVE_KEY_LEN + 1] = "", address [64];
        s_frame_text (&frames [3], address, sizeof address);
        const char *name = NULL;
        if (count == 7 && s_frame_is (&frames [5], "CURVE") && zmq_msg_size (&frames [6]) == 32
        &&  zmq_z85_encode (key, (const uint8_t *) zmq_msg_data (&frames [6]), 32)) {
            if (self->keys_loaded_at < 0 || zclock_mono () - self->keys_loaded_at >= S_RELOAD_MS)
                s_keys_load (self);
            name = (const char *) zhashx_lookup (self->keys, key);
            if (!name) {
                char why [300];
                snprintf (why, sizeof why, "its key %s is not among those allowed in %s",
                          key, self->allowed);
                s_log_refusal (self, key, address, why);
            }
        }
        else
            s_log_refusal (self, "", address, "it does not use CURVE");
        rc = s_send_text (self->zap, "1.0", ZMQ_SNDMORE);
        if (rc == 0)
            rc = zmq_send (self->zap, zmq_msg_data (&frames [1]), zmq_msg_size (&frames [1]),
                           ZMQ_SNDMORE) < 0 ? -1 : 0;
        if (rc == 0)
            rc = s_send_text (self->zap, name ? "200" : "400", ZMQ_SNDMORE);
        if (rc == 0)
            rc = s_send_text (self->zap, name ? "OK" : "key not allowed", ZMQ_SNDMORE);
        if (rc == 0)
            rc = s_send_text (self->zap, name ? key : "", ZMQ_SNDMORE);     //  user id
        if (rc == 0)
            rc = s_send_text (self->zap, "", 0);                            //  metadata
    }
    else
    if (rc == 0)
        //  Not a request: a REP socket must still answer it
        rc = s_send_text (self->zap, "", 0);
    for (size_t index = 0; index < held; index++)
        zmq_msg_close (&frames [index]);
    return rc;
}

static void *
s_zap_run (void *arg)
{
    cask_curve_t *self = (cask_curve_t *) arg;
    while (!atomic_load (&self->zap_stop)) {
        zmq_pollitem_t item = { self->zap, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, S_ZAP_POLL_MS);
        if (rc > 0)
            rc = s_zap_answer (self);
        if (rc < 0 && errno == ETERM)
            break;
    }
    zmq_close (self->zap);
    self->zap = NULL;
    return NULL;
}

//  Binds the handler's REP socket in context and starts its thread, with
//  every signal blocked. Returns 0 or -1.
static int
s_zap_start (cask_curve_t *self, void *context)
{
    if (self->zap_running)
        return self->zap_context == context ? 0
             : s_fail (self, "a curve serves the sockets of one context");
    if (!self->keys)
        self->keys = zhashx_new ();
    if (!self->keys)
        return s_fail (self, "out of memory");
    zhashx_set_destructor (self->keys, s_keys_free);
    self->keys_loaded_at = -1;
    self->zap = zmq_socket (context, ZMQ_REP);
    int zero = 0, rc = -1;
    if (self->zap && zmq_setsockopt (self->zap, ZMQ_LINGER, &zero, sizeof zero) == 0) {
        //  A handler closed just before (cask_curve_close) frees the
        //  endpoint a moment later, when libzmq reaps its socket
        for (int tries = 0; (rc = zmq_bind (self->zap, S_ZAP_ENDPOINT)) && errno == EADDRINUSE
                            && tries < S_REBIND_TRIES; tries++)
            zclock_sleep (10);
    }
    if (rc) {
        s_fail (self, "cannot start the ZAP handler: %s", zmq_strerror (errno));
        if (self->zap)
            zmq_close (self->zap);
        self->zap = NULL;
        return -1;
    }
    sigset_t all, before;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &before);
    rc = pthread_create (&self->zap_thread, NULL, s_zap_run, self);
    pthread_sigmask (SIG_SETMASK, &before, NULL);
    if (rc) {
        zmq_close (self->zap);
        self->zap = NULL;
        return s_fail (self, "cannot start the ZAP handler: %s", strerror (rc));
    }
    self->zap_context = context;
    self->zap_running = true;
    return 0;
}

//  ---------------------------------------------------------------------
//  Sockets

int
cask_curve_server (cask_curve_t *self, void *context, void *socket)
{
    if (!self)
        return 0;
    if (!self->loaded)
        return s_fail (self, "a CURVE server needs its key pair");
    if (!self->allowed)
        return s_fail (self, "a CURVE server needs the directory of the keys it allows");
    int one = 1;
    if (s_zap_start (self, context))
        return -1;
    if (zmq_setsockopt (socket, ZMQ_ZAP_DOMAIN, CASK_CURVE_DOMAIN, strlen (CASK_CURVE_DOMAIN))
    ||  zmq_setsockopt (socket, ZMQ_CURVE_SERVER, &one, sizeof one)
    ||  zmq_setsockopt (socket, ZMQ_CURVE_SECRETKEY, self->secret_key, CASK_CURVE_KEY_LEN))
        return s_fail (self, "cannot make a CURVE server: %s", zmq_strerror (errno));
    return 0;
}

static int
s_client (cask_curve_t *self, void *socket, const char *server_key, const char *whose)
{
    if (!self)
        return 0;
    if (!self->loaded)
        return s_fail (self, "a CURVE client needs its key pair");
    if (!*server_key)
        return s_fail (self, "a CURVE client needs the %s public key", whose);
    if (zmq_setsockopt (socket, ZMQ_CURVE_SERVERKEY, server_key, CASK_CURVE_KEY_LEN)
    ||  zmq_setsockopt (socket, ZMQ_CURVE_PUBLICKEY, self->public_key, CASK_CURVE_KEY_LEN)
    ||  zmq_setsockopt (socket, ZMQ_CURVE_SECRETKEY, self->secret_key, CASK_CURVE_KEY_LEN))
        return s_fail (self, "cannot make a CURVE client: %s", zmq_strerror (errno));
    return 0;
}

int
cask_curve_to_broker (cask_curve_t *self, void *socket)
{
    return s_client (self, socket, self ? self->broker_key : "", "broker's");
}

int
cask_curve_to_workers (cask_curve_t *self, void *socket)
{
    return s_client (self, socket, self ? self->workers_key : "", "workers'");
}

int
cask_curve_watch (cask_curve_t *self, void *context, void *socket)
{
    if (!self)
        return 0;
    s_unwatch (self);
    *self->refusal = 0;
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "inproc://cask-curve-watch-%p-%u", (void *) self,
              self->watches++);
    int zero = 0;
    if (zmq_socket_monitor (socket, endpoint, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                                            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                                            | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL))
        return s_fail (self, "cannot watch the socket: %s", zmq_strerror (errno));
    self->watch = zmq_socket (context, ZMQ_PAIR);
    if (!self->watch
    ||  zmq_setsockopt (self->watch, ZMQ_LINGER, &zero, sizeof zero)
    ||  zmq_connect (self->watch, endpoint)) {
        s_fail (self, "cannot watch the socket: %s", zmq_strerror (errno));
        zmq_socket_monitor (socket, NULL, 0);
        s_unwatch (self);
        return -1;
    }
    return 0;
}

//  Reads the next event of the watched socket: its kind and value.
//  Returns 0, or -1 when there is none.
static int
s_watch_event (cask_curve_t *self, uint16_t *event, uint32_t *value)
{
    zmq_msg_t frame;
    zmq_msg_init (&frame);
    int rc = zmq_msg_recv (&frame, self->watch, ZMQ_DONTWAIT);
    bool whole = rc == 6;
    if (whole) {
        memcpy (event, zmq_msg_data (&frame), 2);
        memcpy (value, (uint8_t *) zmq_msg_data (&frame) + 2, 4);
    }
    //  The endpoint frame follows
    while (rc >= 0 && zmq_msg_more (&frame))
        rc = zmq_msg_recv (&frame, self->watch, ZMQ_DONTWAIT);
    zmq_msg_close (&frame);
    return whole ? 0 : -1;
}

const char *
cask_curve_refusal (cask_curve_t *self)
{
    if (!self)
        return NULL;
    uint16_t event;
    uint32_t value;
    int rank = 0;           //  a refusal says more than a protocol error, which says more
    while (self->watch && s_watch_event (self, &event, &value) == 0) {
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && rank < 3) {
            snprintf (self->refusal, sizeof self->refusal,
                      "the server refused this CURVE key, %s (ZAP status %u): it is not "
                      "among the keys the server allows", self->public_key, value);
            rank = 3;
        }
        else
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && rank < 2) {
            snprintf (self->refusal, sizeof self->refusal,
                      "the CURVE handshake failed (ZMTP error 0x%x): the server does not "
                      "use CURVE", value);
            rank = 2;
        }
        else
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && rank < 1) {
            snprintf (self->refusal, sizeof self->refusal,
                      "the CURVE handshake failed (%s): is the server key given the "
                      "server's?", zmq_strerror ((int) value));
            rank = 1;
        }
    }
    s_unwatch (self);
    return *self->refusal ? self->refusal : NULL;
}
