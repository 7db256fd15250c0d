/*  test_secure.c - a cluster that uses CurveZMQ (cask-broker and
    cask-worker --curve-*, keys made by cask-keygen): a client whose key is
    allowed runs a graph whose dependencies move between workers and
    fetches its results from them, all encrypted; a client whose key is not
    allowed is refused by the broker and by the workers' peer sockets, and
    told so; a plain client gets no answer; a worker whose key is not
    allowed never joins, and says why in its log, until its certificate is
    put in the allowed directory.
*/
#define _GNU_SOURCE
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <czmq.h>
#include "cask_curve.h"
#include "cask_harness.h"
#include "cask_testutil.h"

#define RESULT_TIMEOUT 60000
#define REFUSE_MS 2000              //  how long a refused client waits
//  A worker with no answer from the broker connects again after 4 s
#define EPOCH_MS 4000

static char keys [4096];            //  the pairs (NAME, NAME_secret)
static char allowed [4096];         //  the public certificates let in
static cask_harness_t *harness;
static cask_client_t *client;

static char *
s_path (const char *dir, const char *name)
{
    static char paths [8][4096];
    static int next = 0;
    char *path = paths [next++ % 8];
    int length = snprintf (path, sizeof paths [0], "%s/%s", dir, name);
    ck_assert (length > 0 && (size_t) length < sizeof paths [0]);
    return path;
}

static const char *
s_keygen_bin (void)
{
    static char buf [4096];
    const char *bin = getenv ("CASK_KEYGEN_BIN");
    if (bin && *bin)
        return bin;
    const char *build = getenv ("CASK_BUILD_DIR");
    snprintf (buf, sizeof buf, "%s/scripts/cask-keygen", build && *build ? build : ".");
    return buf;
}

//  Runs cask-keygen with args (NULL-terminated). Returns its exit status.
static int
s_keygen (const char *const *args)
{
    char *argv [16] = { (char *) s_keygen_bin () };
    size_t argc = 1;
    while (args [argc - 1] && argc < 15) {
        argv [argc] = (char *) args [argc - 1];
        argc++;
    }
    argv [argc] = NULL;
    fflush (NULL);
    pid_t pid = fork ();
    if (pid == 0) {
        execv (argv [0], argv);
        _exit (127);
    }
    int status = -1;
    if (pid < 0 || waitpid (pid, &status, 0) != pid)
        return -1;
    return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

//  The public key of the certificate NAME in keys.
static const char *
s_public_key (const char *name)
{
    static char key [CASK_CURVE_KEY_LEN + 1];
    char why [256];
    ck_assert_msg (cask_curve_read_key (s_path (keys, name), key, why, sizeof why) == 0,
                   "%s", why);
    return key;
}

//  True when the file at path holds text.
static bool
s_file_has (const char *path, const char *text)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return false;
    static char content [1 << 20];
    size_t size = fread (content, 1, sizeof content - 1, file);
    fclose (file);
    content [size] = 0;
    return strstr (content, text) != NULL;
}

static int
s_rm (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

//  Makes the keys (broker, workers and alice allowed; mallory and rogue
//  not), starts a broker with CurveZMQ and nworkers workers, and connects
//  alice, who registers the tutorial library.
static void
s_start (size_t nworkers)
{
    const char *tmp = getenv ("TMPDIR");
    snprintf (keys, sizeof keys, "%s/cask-keys-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull (mkdtemp (keys));
    int length = snprintf (allowed, sizeof allowed, "%s/allowed", keys);
    ck_assert (length > 0 && (size_t) length < sizeof allowed);
    const char *allowed_pairs [] = { "--dir", keys, "--allow", allowed, "workers", "alice", NULL };
    const char *other_pairs [] = { "--dir", keys, "broker", "mallory", "rogue", NULL };
    ck_assert_int_eq (s_keygen (allowed_pairs), 0);
    ck_assert_int_eq (s_keygen (other_pairs), 0);
    //  A name taken is kept
    const char *again [] = { "--dir", keys, "alice", NULL };
    ck_assert_int_eq (s_keygen (again), 1);

    const char *broker_args [] = {
        "--curve-cert", s_path (keys, "broker"), "--curve-allow", allowed, NULL
    };
    harness = cask_harness_new_with (broker_args);
    ck_assert_ptr_nonnull (harness);
    const char *worker_args [] = {
        "--curve-cert", s_path (keys, "workers"), "--curve-broker-key", s_path (keys, "broker"),
        "--curve-allow", allowed, NULL
    };
    ck_assert_int_eq (cask_harness_add_workers (harness, nworkers, 2, worker_args), 0);
    client = cask_client_new_secure (cask_harness_broker (harness), s_path (keys, "alice"),
                                     s_path (keys, "broker"), s_path (keys, "workers"), 10000);
    ck_assert_msg (client != NULL, "%s", cask_client_last_error ());
    ck_assert_msg (cask_client_wait_for_workers (client, nworkers, CASK_HARNESS_TIMEOUT_MS) == 0,
                   "%zu of %zu workers joined", cask_client_nworkers (client), nworkers);
    ck_assert_msg (cask_client_register (client, cask_harness_tutorial_lib (), 20000) == 0,
                   "%s", cask_client_error (client));
}

static void
s_stop (void)
{
    cask_client_destroy (&client);
    //  Every process, the refused ones too, stops cleanly on SIGTERM
    ck_assert_int_eq (cask_harness_stop (harness), 0);
    cask_harness_destroy (&harness);
    nftw (keys, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

//  The number of workers in the broker's report, asked by client.
static size_t
s_nworkers (void)
{
    cask_cluster_info_t *info = cask_client_info (client, 5000);
    ck_assert_msg (info != NULL, "%s", cask_client_error (client));
    size_t count = info->nworkers;
    cask_cluster_info_destroy (&info);
    return count;
}

//  Sends STATUS to a worker's peer socket as the CURVE client cert (with
//  the workers' key) and waits timeout_ms for the REPORT. Returns true
//  when it came; *refusal gets what the handshake said (or "").
static bool
s_peer_status (const char *endpoint, const char *cert, int timeout_ms, char *refusal,
               size_t size)
{
    void *context = zmq_ctx_new ();
    void *socket = zmq_socket (context, ZMQ_DEALER);
    cask_curve_t *curve = cask_curve_new (NULL);
    int zero = 0;
    zmq_setsockopt (socket, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq (cask_curve_load (curve, s_path (keys, cert)), 0);
    ck_assert_int_eq (cask_curve_set_workers_key (curve, s_path (keys, "workers")), 0);
    ck_assert_int_eq (cask_curve_to_workers (curve, socket), 0);
    ck_assert_int_eq (cask_curve_watch (curve, context, socket), 0);
    ck_assert_int_eq (zmq_connect (socket, endpoint), 0);
    cask_buf_t body;
    cask_buf_init (&body);
    ck_assert_int_eq (cask_send (socket, NULL, CASK_MSG_STATUS, &body, NULL), 0);
    cask_buf_free (&body);
    zmq_pollitem_t item = { socket, 0, ZMQ_POLLIN, 0 };
    bool answered = false;
    if (zmq_poll (&item, 1, timeout_ms) == 1) {
        cask_message_t msg;
        cask_message_init (&msg);
        const char *why = NULL;
        answered = cask_message_recv (&msg, socket, false, ZMQ_DONTWAIT, &why) == CASK_RECV_OK
                && msg.command == CASK_MSG_REPORT;
        cask_message_close (&msg);
    }
    const char *said = cask_curve_refusal (curve);
    snprintf (refusal, size, "%s", said ? said : "");
    zmq_close (socket);
    cask_curve_destroy (&curve);
    zmq_ctx_term (context);
    return answered;
}

START_TEST (test_allowed_client_runs_a_graph)
{
    s_start (2);
    ck_assert (s_file_has (s_path (cask_harness_dir (harness), "broker.log"),
                           s_public_key ("broker")));
    //  Dependencies move between the workers, results come from both
    enum { N = 400 };
    cask_future_t *xs [N], *ys [N - 1];
    cask_future_t *total = cask_harness_tutorial_graph (client, N, xs, ys);
    const int64_t n = N - 1;
    ck_assert_int_eq (cask_harness_int (client, total, RESULT_TIMEOUT), n * (n - 1) + 3 * n);
    ck_assert_int_eq (cask_gather (client, ys, N - 1, RESULT_TIMEOUT), 0);
    for (int i = 0; i < N - 1; i++)
        ck_assert_int_eq (cask_harness_int (client, ys [i], RESULT_TIMEOUT), 2 * i + 3);
    cask_cluster_info_t *info = cask_client_info (client, 5000);
    ck_assert_ptr_nonnull (info);
    ck_assert_int_eq (info->nworkers, 2);
    for (size_t w = 0; w < 2; w++)
        ck_assert_int_gt (info->workers [w].tasks_done, 0);
    //  The workers' peer sockets answer alice
    char refusal [512];
    ck_assert_msg (s_peer_status (info->workers [0].endpoint, "alice", 5000, refusal,
                                  sizeof refusal), "%s", refusal);
    cask_cluster_info_destroy (&info);
    cask_future_destroy (&total);
    cask_futures_destroy (xs, N);
    cask_futures_destroy (ys, N - 1);

    //  The environment makes cask_client_new secure
    setenv ("CASK_CURVE_CERT", s_path (keys, "alice"), 1);
    setenv ("CASK_CURVE_BROKER_KEY", s_path (keys, "broker"), 1);
    setenv ("CASK_CURVE_WORKERS_KEY", s_public_key ("workers"), 1);
    cask_client_t *other = cask_harness_client (harness, NULL);
    unsetenv ("CASK_CURVE_CERT");
    ck_assert_ptr_nonnull (other);
    cask_future_t *sum = cask_submit (other, "add", cask_int64 (40), cask_int64 (2), NULL);
    ck_assert_int_eq (cask_harness_int (other, sum, RESULT_TIMEOUT), 42);
    cask_future_destroy (&sum);
    cask_client_destroy (&other);
    s_stop ();
}
END_TEST

START_TEST (test_unauthorised_client_is_refused)
{
    s_start (1);
    const char *broker = cask_harness_broker (harness);
    int64_t start = cask_harness_now_ms ();
    cask_client_t *mallory = cask_client_new_secure (broker, s_path (keys, "mallory"),
                                                     s_path (keys, "broker"),
                                                     s_path (keys, "workers"), REFUSE_MS);
    ck_assert_ptr_null (mallory);
    const char *error = cask_client_last_error ();
    printf ("secure: mallory: %s (after %lld ms)\n", error,
            (long long) (cask_harness_now_ms () - start));
    ck_assert_msg (strstr (error, "did not let this client in")
                   && strstr (error, "refused this CURVE key")
                   && strstr (error, s_public_key ("mallory")), "%s", error);
    ck_assert (s_file_has (s_path (cask_harness_dir (harness), "broker.log"),
                           s_public_key ("mallory")));

    //  Without CurveZMQ, no answer at all
    cask_client_t *plain = cask_client_new (broker, REFUSE_MS);
    ck_assert_ptr_null (plain);
    error = cask_client_last_error ();
    ck_assert_msg (strstr (error, "no broker answered") && strstr (error, "CurveZMQ"), "%s",
                   error);
    //  Nor with a key that is not the broker's
    cask_client_t *lost = cask_client_new_secure (broker, s_path (keys, "alice"),
                                                  s_path (keys, "workers"), NULL, REFUSE_MS);
    ck_assert_ptr_null (lost);
    error = cask_client_last_error ();
    ck_assert_msg (strstr (error, "handshake failed"), "%s", error);
    //  Keys that cannot be read are told at once
    lost = cask_client_new_secure (broker, s_path (keys, "nobody"), s_path (keys, "broker"),
                                   NULL, REFUSE_MS);
    ck_assert_ptr_null (lost);
    ck_assert_msg (strstr (cask_client_last_error (), "nobody"), "%s", cask_client_last_error ());
    lost = cask_client_new_secure (broker, s_path (keys, "alice"), "not a key", NULL, REFUSE_MS);
    ck_assert_ptr_null (lost);
    ck_assert_msg (strstr (cask_client_last_error (), "neither a certificate file nor a public key"),
                   "%s", cask_client_last_error ());

    //  The worker's peer socket refuses mallory too, and answers alice
    cask_cluster_info_t *info = cask_client_info (client, 5000);
    ck_assert_ptr_nonnull (info);
    ck_assert_int_eq (info->nworkers, 1);
    char refusal [512];
    ck_assert (!s_peer_status (info->workers [0].endpoint, "mallory", 1500, refusal,
                               sizeof refusal));
    ck_assert_msg (strstr (refusal, "refused this CURVE key"), "%s", refusal);
    ck_assert_msg (s_peer_status (info->workers [0].endpoint, "alice", 5000, refusal,
                                  sizeof refusal), "%s", refusal);
    ck_assert (s_file_has (s_path (cask_harness_dir (harness), "worker-w0.log"),
                           s_public_key ("mallory")));
    cask_cluster_info_destroy (&info);

    //  Alice was never disturbed
    cask_future_t *sum = cask_submit (client, "add", cask_int64 (1), cask_int64 (2), NULL);
    ck_assert_int_eq (cask_harness_int (client, sum, RESULT_TIMEOUT), 3);
    cask_future_destroy (&sum);
    s_stop ();
}
END_TEST

START_TEST (test_unauthorised_worker_is_refused)
{
    s_start (1);
    //  w1 with a key that is not allowed, w2 without CurveZMQ
    const char *rogue_args [] = {
        "--curve-cert", s_path (keys, "rogue"), "--curve-broker-key", s_path (keys, "broker"),
        "--curve-allow", allowed, NULL
    };
    ck_assert_int_eq (cask_harness_add_workers (harness, 1, 1, rogue_args), 0);
    ck_assert_int_eq (cask_harness_add_workers (harness, 1, 1, NULL), 0);
    //  Past a whole epoch: each said HELLO, heard nothing, and tries again
    usleep ((EPOCH_MS + 1500) * 1000);
    ck_assert (cask_harness_worker_alive (harness, 1) && cask_harness_worker_alive (harness, 2));
    ck_assert_int_eq (s_nworkers (), 1);
    const char *dir = cask_harness_dir (harness);
    ck_assert (s_file_has (s_path (dir, "broker.log"), s_public_key ("rogue")));
    ck_assert (!s_file_has (s_path (dir, "broker.log"), "w1 at"));
    ck_assert (!s_file_has (s_path (dir, "broker.log"), "w2 at"));
    ck_assert (s_file_has (s_path (dir, "worker-w1.log"), "refused this CURVE key"));
    //  Tasks run on the worker that joined
    cask_future_t *sum = cask_submit (client, "add", cask_int64 (20), cask_int64 (22), NULL);
    ck_assert_int_eq (cask_harness_int (client, sum, RESULT_TIMEOUT), 42);
    cask_future_destroy (&sum);

    //  Allowed now, the rogue joins at its next try
    char command [16384];
    snprintf (command, sizeof command, "cp '%s' '%s'", s_path (keys, "rogue"), allowed);
    ck_assert_int_eq (system (command), 0);
    int64_t deadline = cask_harness_now_ms () + 3 * EPOCH_MS;
    while (s_nworkers () < 2 && cask_harness_now_ms () < deadline)
        usleep (100000);
    ck_assert_int_eq (s_nworkers (), 2);
    ck_assert (s_file_has (s_path (dir, "broker.log"), "w1 at"));
    s_stop ();
}
END_TEST

int
main (void)
{
    TCase *tc = tcase_create ("secure");
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_allowed_client_runs_a_graph);
    tcase_add_test (tc, test_unauthorised_client_is_refused);
    tcase_add_test (tc, test_unauthorised_worker_is_refused);
    return cask_test_run ("secure", tc, NULL);
}
