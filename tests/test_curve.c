/*  test_curve.c - cask_curve: reading keys and certificates, and a CURVE
    server on loopback that lets in the keys of its directory only, reads
    the directory again when it changes, and survives files that are not
    certificates and keys given twice.
*/
#define _GNU_SOURCE
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <czmq.h>
#include "cask_curve.h"
#include "cask_testutil.h"

static char dir [256];              //  the pairs
static char allowed [300];          //  the public certificates let in

static char *
s_path (const char *name)
{
    static char paths [4][600];
    static int next = 0;
    char *path = paths [next++ % 4];
    snprintf (path, sizeof paths [0], "%s/%s", dir, name);
    return path;
}

//  Makes the pair name in dir (and its public certificate in allowed when
//  allow); returns its public key (static).
static const char *
s_make (const char *name, bool allow)
{
    static char key [CASK_CURVE_KEY_LEN + 1];
    zcert_t *cert = zcert_new ();
    ck_assert_ptr_nonnull (cert);
    ck_assert_int_eq (zcert_save (cert, s_path (name)), 0);
    if (allow) {
        char path [600];
        snprintf (path, sizeof path, "%s/%s", allowed, name);
        ck_assert_int_eq (zcert_save_public (cert, path), 0);
    }
    snprintf (key, sizeof key, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
    return key;
}

static int
s_rm (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

static void
s_setup (void)
{
    snprintf (dir, sizeof dir, "/tmp/cask-curve-XXXXXX");
    ck_assert_ptr_nonnull (mkdtemp (dir));
    snprintf (allowed, sizeof allowed, "%s/allowed", dir);
    ck_assert_int_eq (mkdir (allowed, 0755), 0);
}

static void
s_teardown (void)
{
    nftw (dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
}

START_TEST (test_keys)
{
    const char *public_key = s_make ("server", false);
    char key [CASK_CURVE_KEY_LEN + 1], why [512];
    //  A certificate, its secret file, or the Z85 text
    ck_assert_int_eq (cask_curve_read_key (s_path ("server"), key, why, sizeof why), 0);
    ck_assert_str_eq (key, public_key);
    char secret [600];
    snprintf (secret, sizeof secret, "%s_secret", s_path ("server"));
    ck_assert_int_eq (cask_curve_read_key (secret, key, why, sizeof why), 0);
    ck_assert_str_eq (key, public_key);
    ck_assert_int_eq (cask_curve_read_key (public_key, key, why, sizeof why), 0);
    ck_assert_str_eq (key, public_key);
    //  Neither
    ck_assert_int_eq (cask_curve_read_key ("short", key, why, sizeof why), -1);
    ck_assert_msg (strstr (why, "neither a certificate file nor a public key"), "%s", why);
    ck_assert_int_eq (cask_curve_read_key ("0123456789012345678901234567890123456789~~",
                                           key, why, sizeof why), -1);
    ck_assert_int_eq (cask_curve_read_key ("", key, why, sizeof why), -1);
    ck_assert_int_eq (cask_curve_read_key (NULL, key, why, sizeof why), -1);
    FILE *file = fopen (s_path ("junk"), "w");
    ck_assert_ptr_nonnull (file);
    fputs ("not a certificate at all\n", file);
    fclose (file);
    ck_assert_int_eq (cask_curve_read_key (s_path ("junk"), key, why, sizeof why), -1);
    ck_assert_msg (strstr (why, "is not a certificate"), "%s", why);

    //  A pair needs its secret half
    cask_curve_t *curve = cask_curve_new (NULL);
    ck_assert_ptr_nonnull (curve);
    ck_assert_str_eq (cask_curve_error (curve), "");
    ck_assert_int_eq (cask_curve_load (curve, s_path ("missing")), -1);
    ck_assert_msg (strstr (cask_curve_error (curve), "No such file"), "%s",
                   cask_curve_error (curve));
    ck_assert_int_eq (remove (secret), 0);
    ck_assert_int_eq (cask_curve_load (curve, s_path ("server")), -1);
    ck_assert_msg (strstr (cask_curve_error (curve), "no secret key"), "%s",
                   cask_curve_error (curve));
    ck_assert_str_eq (cask_curve_public_key (curve), "");
    public_key = s_make ("server", false);
    ck_assert_int_eq (cask_curve_load (curve, s_path ("server")), 0);
    ck_assert_str_eq (cask_curve_public_key (curve), public_key);
    ck_assert_int_eq (cask_curve_set_allowed (curve, s_path ("none")), -1);
    ck_assert_int_eq (cask_curve_set_allowed (curve, s_path ("server")), -1);
    ck_assert_msg (strstr (cask_curve_error (curve), "not a directory"), "%s",
                   cask_curve_error (curve));
    ck_assert_int_eq (cask_curve_set_broker_key (curve, "nonsense"), -1);
    ck_assert_msg (strstr (cask_curve_error (curve), "the broker's key"), "%s",
                   cask_curve_error (curve));

    //  Sockets: a server needs the allowed keys, a client the server's key
    void *context = zmq_ctx_new ();
    void *socket = zmq_socket (context, ZMQ_ROUTER);
    ck_assert_int_eq (cask_curve_server (curve, context, socket), -1);
    ck_assert_msg (strstr (cask_curve_error (curve), "keys it allows"), "%s",
                   cask_curve_error (curve));
    ck_assert_int_eq (cask_curve_to_workers (curve, socket), -1);
    ck_assert_msg (strstr (cask_curve_error (curve), "the workers' public key"), "%s",
                   cask_curve_error (curve));
    //  NULL: no CurveZMQ, nothing done
    ck_assert_int_eq (cask_curve_server (NULL, context, socket), 0);
    ck_assert_int_eq (cask_curve_to_broker (NULL, socket), 0);
    ck_assert_int_eq (cask_curve_watch (NULL, context, socket), 0);
    ck_assert_ptr_null (cask_curve_refusal (NULL));
    cask_curve_close (NULL);
    zmq_close (socket);
    zmq_ctx_term (context);
    cask_curve_destroy (&curve);
    cask_curve_destroy (&curve);
}
END_TEST

//  Connects a DEALER as the pair name to the server at endpoint, sends
//  "ping", and returns true when "ping" comes back within timeout_ms;
//  *refusal gets what its handshakes said ("" when nothing).
static bool
s_ping (const char *endpoint, const char *name, const char *server_key, int timeout_ms,
        char *refusal, size_t size)
{
    void *context = zmq_ctx_new ();
    void *socket = zmq_socket (context, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt (socket, ZMQ_LINGER, &zero, sizeof zero);
    cask_curve_t *curve = cask_curve_new (NULL);
    ck_assert_int_eq (cask_curve_load (curve, s_path (name)), 0);
    ck_assert_int_eq (cask_curve_set_broker_key (curve, server_key), 0);
    ck_assert_int_eq (cask_curve_to_broker (curve, socket), 0);
    ck_assert_int_eq (cask_curve_watch (curve, context, socket), 0);
    ck_assert_int_eq (zmq_connect (socket, endpoint), 0);
    ck_assert_int_eq (zmq_send (socket, "ping", 4, 0), 4);
    zmq_pollitem_t item = { socket, 0, ZMQ_POLLIN, 0 };
    char reply [8] = "";
    bool answered = zmq_poll (&item, 1, timeout_ms) == 1
                 && zmq_recv (socket, reply, sizeof reply, 0) == 4
                 && memcmp (reply, "ping", 4) == 0;
    const char *said = cask_curve_refusal (curve);
    snprintf (refusal, size, "%s", said ? said : "");
    zmq_close (socket);
    //  The watch is closed: the context terminates with the curve alive
    zmq_ctx_term (context);
    cask_curve_destroy (&curve);
    return answered;
}

typedef struct {
    void *socket;
    volatile bool stop;
    char user_id [CASK_CURVE_KEY_LEN + 1];
} s_echo_t;

//  Echoes what the ROUTER receives, and notes the ZAP user id it carries.
static void *
s_echo (void *arg)
{
    s_echo_t *echo = (s_echo_t *) arg;
    while (!echo->stop) {
        zmq_pollitem_t item = { echo->socket, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 50) != 1)
            continue;
        zmq_msg_t id, body;
        zmq_msg_init (&id);
        zmq_msg_init (&body);
        if (zmq_msg_recv (&id, echo->socket, 0) >= 0 && zmq_msg_recv (&body, echo->socket, 0) >= 0) {
            const char *user = zmq_msg_gets (&body, "User-Id");
            snprintf (echo->user_id, sizeof echo->user_id, "%s", user ? user : "");
            zmq_msg_send (&id, echo->socket, ZMQ_SNDMORE);
            zmq_msg_send (&body, echo->socket, 0);
        }
        zmq_msg_close (&id);
        zmq_msg_close (&body);
    }
    return NULL;
}

START_TEST (test_server_lets_in_allowed_keys_only)
{
    const char *alice = strdup (s_make ("alice", true));
    s_make ("mallory", false);
    const char *server_key = strdup (s_make ("server", false));
    //  Things the directory may hold: a secret file, junk, a key twice,
    //  a hidden file, a subdirectory
    char path [700];
    snprintf (path, sizeof path, "%s/alice_secret", allowed);
    zcert_t *cert = zcert_load (s_path ("alice"));
    ck_assert_int_eq (zcert_save_secret (cert, path), 0);
    snprintf (path, sizeof path, "%s/alice-again", allowed);
    ck_assert_int_eq (zcert_save_public (cert, path), 0);
    zcert_destroy (&cert);
    snprintf (path, sizeof path, "%s/junk", allowed);
    FILE *file = fopen (path, "w");
    fputs ("[[[ not a certificate\n", file);
    fclose (file);
    snprintf (path, sizeof path, "%s/.hidden", allowed);
    file = fopen (path, "w");
    fclose (file);
    snprintf (path, sizeof path, "%s/sub", allowed);
    ck_assert_int_eq (mkdir (path, 0755), 0);

    cask_curve_t *curve = cask_curve_new ("test_curve");
    ck_assert_int_eq (cask_curve_load (curve, s_path ("server")), 0);
    ck_assert_int_eq (cask_curve_set_allowed (curve, allowed), 0);
    void *context = zmq_ctx_new ();
    s_echo_t echo = { zmq_socket (context, ZMQ_ROUTER), false, "" };
    int zero = 0;
    zmq_setsockopt (echo.socket, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_msg (cask_curve_server (curve, context, echo.socket) == 0, "%s",
                   cask_curve_error (curve));
    //  Once per curve and context; another context is refused
    ck_assert_int_eq (cask_curve_server (curve, context, echo.socket), 0);
    void *other = zmq_ctx_new ();
    void *stray = zmq_socket (other, ZMQ_ROUTER);
    ck_assert_int_eq (cask_curve_server (curve, other, stray), -1);
    zmq_close (stray);
    zmq_ctx_term (other);
    ck_assert_int_eq (zmq_bind (echo.socket, "tcp://127.0.0.1:*"), 0);
    char endpoint [256];
    size_t size = sizeof endpoint;
    ck_assert_int_eq (zmq_getsockopt (echo.socket, ZMQ_LAST_ENDPOINT, endpoint, &size), 0);
    pthread_t thread;
    ck_assert_int_eq (pthread_create (&thread, NULL, s_echo, &echo), 0);

    char refusal [512];
    ck_assert_msg (s_ping (endpoint, "alice", server_key, 5000, refusal, sizeof refusal),
                   "%s", refusal);
    ck_assert_str_eq (echo.user_id, alice);
    ck_assert (!s_ping (endpoint, "mallory", server_key, 1000, refusal, sizeof refusal));
    ck_assert_msg (strstr (refusal, "refused this CURVE key") && strstr (refusal, "400"), "%s",
                   refusal);
    //  The wrong server key: the handshake fails, no key is refused
    ck_assert (!s_ping (endpoint, "alice", alice, 1000, refusal, sizeof refusal));
    ck_assert_msg (strstr (refusal, "handshake failed"), "%s", refusal);

    //  Mallory's certificate put in, alice's taken out: within a second
    snprintf (path, sizeof path, "%s/mallory", allowed);
    cert = zcert_load (s_path ("mallory"));
    ck_assert_int_eq (zcert_save_public (cert, path), 0);
    zcert_destroy (&cert);
    snprintf (path, sizeof path, "%s/alice", allowed);
    ck_assert_int_eq (remove (path), 0);
    snprintf (path, sizeof path, "%s/alice-again", allowed);
    ck_assert_int_eq (remove (path), 0);
    usleep (1100 * 1000);
    ck_assert_msg (s_ping (endpoint, "mallory", server_key, 5000, refusal, sizeof refusal),
                   "%s", refusal);
    ck_assert (!s_ping (endpoint, "alice", server_key, 1000, refusal, sizeof refusal));

    //  The handler stops when the curve closes (its context still up), and
    //  serves again after
    cask_curve_close (curve);
    ck_assert_msg (cask_curve_server (curve, context, echo.socket) == 0, "%s",
                   cask_curve_error (curve));
    ck_assert_msg (s_ping (endpoint, "mallory", server_key, 5000, refusal, sizeof refusal),
                   "%s", refusal);
    echo.stop = true;
    pthread_join (thread, NULL);
    zmq_close (echo.socket);
    //  And by itself when the context terminates
    zmq_ctx_term (context);
    cask_curve_destroy (&curve);
    free ((char *) alice);
    free ((char *) server_key);
}
END_TEST

int
main (void)
{
    TCase *tc = tcase_create ("curve");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_keys);
    tcase_add_test (tc, test_server_lets_in_allowed_keys_only);
    return cask_test_run ("curve", tc, NULL);
}
