/*  cask_harness.c - a real cask cluster for integration tests.

    Each process is forked and exec'd with PR_SET_PDEATHSIG so that it dies
    with the test process even when that is killed outright. A registry of
    live harnesses lets an atexit hook and SIGABRT/SIGINT/SIGTERM handlers
    print the logs and kill what is left when a test ends without tearing
    its cluster down; both only touch harnesses this very process started
    (Check forks tests from a parent that may hold one too), and the signal
    side only makes async-signal-safe calls.
*/
#define _GNU_SOURCE
#include "cask_harness.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define GRACE_MS 8000               //  SIGTERM to SIGKILL
#define LOG_TAIL (48 * 1024)        //  bytes of each log printed
#define MAX_WORKERS 64
#define MAX_HARNESSES 8

typedef struct {
    pid_t pid;
    char *log;                  //  path of its stdout+stderr
    char *label;                //  "broker", "worker w0"
    int status;                 //  from waitpid, once exited
    bool exited;
    bool killed;                //  killed on purpose by the test
} s_proc_t;

struct _cask_harness_t {
    pid_t owner;                //  the process that started the cluster
    char *dir;
    char *endpoint_file;
    char broker_address [256];
    s_proc_t broker;
    s_proc_t workers [MAX_WORKERS];
    size_t nworkers;
    void *ctx;                  //  for STATUS queries
    bool stopped;
};

//  Harnesses alive in this process, for the exit and signal hooks.
static cask_harness_t *s_live [MAX_HARNESSES];
static bool s_hooks_installed;


//  ---------------------------------------------------------------------
//  Async-signal-safe helpers (used from the hooks)

static void s_write_all (int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t n = write (fd, data, size);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return;
        }
        data += n;
        size -= (size_t) n;
    }
}

static void s_write_str (int fd, const char *s)
{
    s_write_all (fd, s, strlen (s));
}

static void s_print_log (const s_proc_t *proc)
{
    if (!proc->log)
        return;
    s_write_str (STDERR_FILENO, "----- ");
    s_write_str (STDERR_FILENO, proc->label);
    s_write_str (STDERR_FILENO, " log (");
    s_write_str (STDERR_FILENO, proc->log);
    s_write_str (STDERR_FILENO, ") -----\n");
    int fd = open (proc->log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t size = lseek (fd, 0, SEEK_END);
    if (size > LOG_TAIL) {
        s_write_str (STDERR_FILENO, "[... earlier lines cut ...]\n");
        lseek (fd, size - LOG_TAIL, SEEK_SET);
    }
    else
        lseek (fd, 0, SEEK_SET);
    char buf [4096];
    ssize_t n;
    while ((n = read (fd, buf, sizeof buf)) > 0)
        s_write_all (STDERR_FILENO, buf, (size_t) n);
    close (fd);
    s_write_str (STDERR_FILENO, "----- end of ");
    s_write_str (STDERR_FILENO, proc->label);
    s_write_str (STDERR_FILENO, " log -----\n");
}

static void s_print_logs (const cask_harness_t *self)
{
    s_print_log (&self->broker);
    for (size_t i = 0; i < self->nworkers; i++)
        s_print_log (&self->workers [i]);
}

static void s_kill_all (cask_harness_t *self)
{
    for (size_t i = 0; i < self->nworkers; i++)
        if (self->workers [i].pid > 0 && !self->workers [i].exited)
            kill (self->workers [i].pid, SIGKILL);
    if (self->broker.pid > 0 && !self->broker.exited)
        kill (self->broker.pid, SIGKILL);
}

//  A test ended (exit or fatal signal) with clusters still up: show why
//  they may have failed, and take them down.
static void s_abandon_live (const char *why)
{
    pid_t me = getpid ();
    for (size_t i = 0; i < MAX_HARNESSES; i++) {
        cask_harness_t *self = s_live [i];
        if (!self || self->owner != me || self->stopped)
            continue;
        s_write_str (STDERR_FILENO, "cask_harness: ");
        s_write_str (STDERR_FILENO, why);
        s_write_str (STDERR_FILENO, " with the cluster still running; its logs follow\n");
        s_print_logs (self);
        s_kill_all (self);
        self->stopped = true;
    }
}

static void s_on_exit (void)
{
    s_abandon_live ("the test exited");
}

static void s_on_signal (int sig)
{
    s_abandon_live ("the test got a fatal signal");
    signal (sig, SIG_DFL);
    raise (sig);
}

static void s_install_hooks (void)
{
    if (s_hooks_installed)
        return;
    s_hooks_installed = true;
    atexit (s_on_exit);
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    //  Not SIGSEGV and friends: the sanitizers report those, and the
    //  children die with us anyway (PR_SET_PDEATHSIG).
    sigaction (SIGABRT, &sa, NULL);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
}

static void s_register (cask_harness_t *self)
{
    s_install_hooks ();
    for (size_t i = 0; i < MAX_HARNESSES; i++)
        if (!s_live [i]) {
            s_live [i] = self;
            return;
        }
}

static void s_unregister (cask_harness_t *self)
{
    for (size_t i = 0; i < MAX_HARNESSES; i++)
        if (s_live [i] == self)
            s_live [i] = NULL;
}


//  ---------------------------------------------------------------------
//  Processes

int64_t cask_harness_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms (int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000 };
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
        ;
}

static char *s_strdup_printf (const char *format, ...)
    __attribute__ ((format (printf, 1, 2)));

static char *s_strdup_printf (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *s = NULL;
    if (vasprintf (&s, format, args) < 0)
        s = NULL;
    va_end (args);
    return s;
}

//  In the child between fork and exec: only async-signal-safe calls.
static void s_child_exec (char *const argv [], const char *log, pid_t parent)
{
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    if (getppid () != parent)
        _exit (127);            //  the parent died before prctl took hold
    int in = open ("/dev/null", O_RDONLY);
    int out = open (log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0)
        _exit (127);
    dup2 (in, STDIN_FILENO);
    dup2 (out, STDOUT_FILENO);
    dup2 (out, STDERR_FILENO);
    long maxfd = sysconf (_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 4096)
        maxfd = 4096;
    for (int fd = 3; fd < maxfd; fd++)
        close (fd);
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    signal (SIGPIPE, SIG_DFL);
    signal (SIGINT, SIG_DFL);
    signal (SIGTERM, SIG_DFL);
    execv (argv [0], argv);
    s_write_str (STDERR_FILENO, "cask_harness: cannot exec ");
    s_write_str (STDERR_FILENO, argv [0]);
    s_write_str (STDERR_FILENO, "\n");
    _exit (127);
}

static int s_spawn (s_proc_t *proc, char *const argv [], const char *log,
                    const char *label)
{
    memset (proc, 0, sizeof *proc);
    proc->log = strdup (log);
    proc->label = strdup (label);
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid < 0) {
        fprintf (stderr, "cask_harness: fork: %s\n", strerror (errno));
        proc->exited = true;
        return -1;
    }
    if (pid == 0)
        s_child_exec (argv, log, parent);
    proc->pid = pid;
    return 0;
}

static bool s_proc_alive (s_proc_t *proc)
{
    if (proc->pid <= 0 || proc->exited)
        return false;
    int status;
    pid_t rc = waitpid (proc->pid, &status, WNOHANG);
    if (rc == proc->pid || (rc < 0 && errno == ECHILD)) {
        proc->exited = true;
        proc->status = rc == proc->pid ? status : 0;
        return false;
    }
    return true;
}

//  SIGTERM, wait up to the grace period, then SIGKILL. True when it
//  exited by itself with status 0 (or was killed on purpose earlier).
static bool s_proc_stop (s_proc_t *proc)
{
    if (s_proc_alive (proc)) {
        kill (proc->pid, SIGTERM);
        int64_t deadline = cask_harness_now_ms () + GRACE_MS;
        while (s_proc_alive (proc) && cask_harness_now_ms () < deadline)
            s_sleep_ms (10);
        if (s_proc_alive (proc)) {
            fprintf (stderr, "cask_harness: %s (pid %d) ignored SIGTERM for %d ms, killing it\n",
                     proc->label, (int) proc->pid, GRACE_MS);
            kill (proc->pid, SIGKILL);
            int status;
            if (waitpid (proc->pid, &status, 0) == proc->pid)
                proc->status = status;
            proc->exited = true;
            return false;
        }
    }
    if (proc->killed || proc->pid <= 0)
        return true;
    if (WIFEXITED (proc->status) && WEXITSTATUS (proc->status) == 0)
        return true;
    if (WIFSIGNALED (proc->status))
        fprintf (stderr, "cask_harness: %s (pid %d) died of signal %d\n",
                 proc->label, (int) proc->pid, WTERMSIG (proc->status));
    else
        fprintf (stderr, "cask_harness: %s (pid %d) exited with status %d\n",
                 proc->label, (int) proc->pid, WEXITSTATUS (proc->status));
    return false;
}

static void s_proc_fini (s_proc_t *proc)
{
    free (proc->log);
    free (proc->label);
    proc->log = proc->label = NULL;
}

static const char *s_env_or (const char *name, const char *build_rel, char *buf,
                             size_t size)
{
    const char *value = getenv (name);
    if (value && *value)
        return value;
    const char *build = getenv ("CASK_BUILD_DIR");
    snprintf (buf, size, "%s/%s", build && *build ? build : ".", build_rel);
    return buf;
}

static const char *s_broker_bin (void)
{
    static char buf [4096];
    return s_env_or ("CASK_BROKER_BIN", "broker/cask-broker", buf, sizeof buf);
}

static const char *s_worker_bin (void)
{
    static char buf [4096];
    return s_env_or ("CASK_WORKER_BIN", "worker/cask-worker", buf, sizeof buf);
}

const char *cask_harness_tutorial_lib (void)
{
    static char buf [4096];
    return s_env_or ("CASK_TUTORIAL_LIB", "examples/libtutorial.so", buf, sizeof buf);
}

const char *cask_harness_test_lib (void)
{
    static char buf [4096];
    return s_env_or ("CASK_TEST_LIB", "tests/libcask_testlib.so", buf, sizeof buf);
}

const char *cask_harness_noexports_lib (void)
{
    static char buf [4096];
    return s_env_or ("CASK_NOEXPORTS_LIB", "tests/libcask_noexports.so", buf, sizeof buf);
}

static bool s_verbose (void)
{
    const char *v = getenv ("CASK_HARNESS_VERBOSE");
    return v && *v && strcmp (v, "0") != 0;
}


//  ---------------------------------------------------------------------
//  The cluster

//  Reads the endpoint file once the broker has written it.
static int s_read_endpoint (cask_harness_t *self)
{
    FILE *file = fopen (self->endpoint_file, "r");
    if (!file)
        return -1;
    char line [sizeof self->broker_address];
    bool ok = fgets (line, sizeof line, file) != NULL;
    fclose (file);
    if (!ok)
        return -1;
    line [strcspn (line, "\r\n")] = 0;
    if (strncmp (line, "tcp://", 6) != 0 || !strchr (line + 6, ':'))
        return -1;
    snprintf (self->broker_address, sizeof self->broker_address, "%s", line);
    return 0;
}

static int s_start_broker (cask_harness_t *self)
{
    char *log = s_strdup_printf ("%s/broker.log", self->dir);
    char *argv [] = {
        (char *) s_broker_bin (), "--bind", "tcp://127.0.0.1:*",
        "--endpoint-file", self->endpoint_file,
        s_verbose () ? "--verbose" : NULL, NULL
    };
    int rc = log ? s_spawn (&self->broker, argv, log, "broker") : -1;
    free (log);
    if (rc)
        return -1;
    int64_t deadline = cask_harness_now_ms () + CASK_HARNESS_TIMEOUT_MS;
    while (cask_harness_now_ms () < deadline) {
        if (s_read_endpoint (self) == 0)
            return 0;
        if (!s_proc_alive (&self->broker)) {
            fprintf (stderr, "cask_harness: %s exited before it was bound\n",
                     argv [0]);
            return -1;
        }
        s_sleep_ms (10);
    }
    fprintf (stderr, "cask_harness: %s wrote no endpoint to %s in %d ms\n",
             argv [0], self->endpoint_file, CASK_HARNESS_TIMEOUT_MS);
    return -1;
}

cask_harness_t *cask_harness_new (void)
{
    cask_harness_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->owner = getpid ();
    const char *tmp = getenv ("TMPDIR");
    self->dir = s_strdup_printf ("%s/cask-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!self->dir || !mkdtemp (self->dir)) {
        fprintf (stderr, "cask_harness: cannot make a temp dir: %s\n", strerror (errno));
        free (self->dir);
        free (self);
        return NULL;
    }
    self->endpoint_file = s_strdup_printf ("%s/broker.endpoint", self->dir);
    self->ctx = zmq_ctx_new ();
    s_register (self);
    if (!self->endpoint_file || !self->ctx || s_start_broker (self)) {
        cask_harness_print_logs (self);
        cask_harness_destroy (&self);
    }
    return self;
}

cask_harness_t *cask_harness_start (size_t nworkers, int nthreads)
{
    cask_harness_t *self = cask_harness_new ();
    if (!self)
        return NULL;
    if (cask_harness_add_workers (self, nworkers, nthreads, NULL)
    ||  cask_harness_wait_workers (self, nworkers, CASK_HARNESS_TIMEOUT_MS)) {
        cask_harness_print_logs (self);
        cask_harness_destroy (&self);
    }
    return self;
}

static int s_rm_entry (const char *path, const struct stat *st, int flag,
                       struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    remove (path);
    return 0;
}

void cask_harness_destroy (cask_harness_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cask_harness_t *self = *self_p;
    cask_harness_stop (self);
    s_unregister (self);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    const char *keep = getenv ("CASK_HARNESS_KEEP");
    if (keep && *keep && strcmp (keep, "0") != 0)
        fprintf (stderr, "cask_harness: kept %s\n", self->dir);
    else
        nftw (self->dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    s_proc_fini (&self->broker);
    for (size_t i = 0; i < self->nworkers; i++)
        s_proc_fini (&self->workers [i]);
    free (self->endpoint_file);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

int cask_harness_add_workers (cask_harness_t *self, size_t n, int nthreads,
                              const char *const *extra)
{
    for (size_t i = 0; i < n; i++) {
        if (self->nworkers == MAX_WORKERS)
            return -1;
        size_t index = self->nworkers;
        char name [32], threads [16], label [48];
        snprintf (name, sizeof name, "w%zu", index);
        snprintf (threads, sizeof threads, "%d", nthreads);
        snprintf (label, sizeof label, "worker %s", name);
        char *dir = s_strdup_printf ("%s/worker-%s", self->dir, name);
        char *log = s_strdup_printf ("%s/worker-%s.log", self->dir, name);
        if (!dir || !log || mkdir (dir, 0755)) {
            free (dir);
            free (log);
            return -1;
        }
        char *argv [32] = {
            (char *) s_worker_bin (), self->broker_address,
            "--nthreads", threads, "--dir", dir, "--name", name
        };
        size_t argc = 8;
        if (s_verbose ())
            argv [argc++] = "--verbose";
        for (size_t e = 0; extra && extra [e] && argc < 31; e++)
            argv [argc++] = (char *) extra [e];
        argv [argc] = NULL;
        int rc = s_spawn (&self->workers [index], argv, log, label);
        self->nworkers++;
        free (dir);
        free (log);
        if (rc)
            return -1;
    }
    return 0;
}

int cask_harness_wait_workers (cask_harness_t *self, size_t n, int timeout_ms)
{
    int64_t deadline = cask_harness_now_ms () + timeout_ms;
    int64_t seen = -1;
    do {
        cJSON *report = cask_harness_broker_report (self, 2000);
        cJSON *workers = cJSON_GetObjectItemCaseSensitive (report, "workers");
        seen = cJSON_IsArray (workers) ? cJSON_GetArraySize (workers) : -1;
        cJSON_Delete (report);
        if (seen >= 0 && (size_t) seen >= n)
            return 0;
        if (!s_proc_alive (&self->broker))
            break;
        s_sleep_ms (20);
    } while (cask_harness_now_ms () < deadline);
    fprintf (stderr, "cask_harness: the broker reports %lld of %zu workers\n",
             (long long) seen, n);
    return -1;
}

const char *cask_harness_broker (cask_harness_t *self)
{
    return self->broker_address;
}

const char *cask_harness_dir (cask_harness_t *self)
{
    return self->dir;
}

size_t cask_harness_nworkers (cask_harness_t *self)
{
    return self->nworkers;
}

pid_t cask_harness_broker_pid (cask_harness_t *self)
{
    return self->broker.pid;
}

pid_t cask_harness_worker_pid (cask_harness_t *self, size_t index)
{
    return index < self->nworkers ? self->workers [index].pid : -1;
}

bool cask_harness_broker_alive (cask_harness_t *self)
{
    return s_proc_alive (&self->broker);
}

bool cask_harness_worker_alive (cask_harness_t *self, size_t index)
{
    return index < self->nworkers && s_proc_alive (&self->workers [index]);
}

int cask_harness_kill_worker (cask_harness_t *self, size_t index)
{
    if (!cask_harness_worker_alive (self, index))
        return -1;
    s_proc_t *proc = &self->workers [index];
    proc->killed = true;
    kill (proc->pid, SIGKILL);
    int status;
    if (waitpid (proc->pid, &status, 0) == proc->pid)
        proc->status = status;
    proc->exited = true;
    return 0;
}

cask_client_t *cask_harness_client (cask_harness_t *self, const char *lib)
{
    cask_client_t *client = cask_client_new (self->broker_address, 10000);
    if (!client) {
        fprintf (stderr, "cask_harness: cannot connect to %s: %s\n",
                 self->broker_address, cask_client_last_error ());
        return NULL;
    }
    if (lib && cask_client_register (client, lib, 20000)) {
        fprintf (stderr, "cask_harness: cannot register %s: %s\n", lib,
                 cask_client_error (client));
        cask_client_destroy (&client);
    }
    return client;
}


//  ---------------------------------------------------------------------
//  Reports

cJSON *cask_harness_report (cask_harness_t *self, const char *endpoint,
                            int timeout_ms)
{
    void *socket = zmq_socket (self->ctx, ZMQ_DEALER);
    if (!socket)
        return NULL;
    int linger = 0;
    zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
    cJSON *json = NULL;
    cask_buf_t body;
    cask_buf_init (&body);
    if (zmq_connect (socket, endpoint) == 0
    &&  cask_send (socket, NULL, CASK_STATUS, &body, NULL) == 0) {
        zmq_pollitem_t item = { socket, 0, ZMQ_POLLIN, 0 };
        int64_t deadline = cask_harness_now_ms () + timeout_ms;
        int rc;
        do
            rc = zmq_poll (&item, 1, (long) (deadline - cask_harness_now_ms ()));
        while (rc < 0 && errno == EINTR && cask_harness_now_ms () < deadline);
        cask_message_t msg;
        cask_message_init (&msg);
        const char *why = NULL;
        if (rc == 1
        &&  cask_message_recv (&msg, socket, false, ZMQ_DONTWAIT, &why) == CASK_RECV_OK
        &&  msg.command == CASK_REPORT)
            json = cJSON_ParseWithLength (zmq_msg_data (&msg.body),
                                          zmq_msg_size (&msg.body));
        cask_message_close (&msg);
    }
    cask_buf_free (&body);
    zmq_close (socket);
    return json;
}

cJSON *cask_harness_broker_report (cask_harness_t *self, int timeout_ms)
{
    return cask_harness_report (self, self->broker_address, timeout_ms);
}

int cask_harness_worker_endpoint (cask_harness_t *self, size_t index,
                                  char *buf, size_t size)
{
    char name [32];
    snprintf (name, sizeof name, "w%zu", index);
    cJSON *report = cask_harness_broker_report (self, 5000);
    cJSON *workers = cJSON_GetObjectItemCaseSensitive (report, "workers");
    int rc = -1;
    const cJSON *worker;
    cJSON_ArrayForEach (worker, workers) {
        const cJSON *wname = cJSON_GetObjectItemCaseSensitive (worker, "name");
        const cJSON *endpoint = cJSON_GetObjectItemCaseSensitive (worker, "endpoint");
        if (cJSON_IsString (wname) && strcmp (wname->valuestring, name) == 0
        &&  cJSON_IsString (endpoint)) {
            snprintf (buf, size, "%s", endpoint->valuestring);
            rc = 0;
            break;
        }
    }
    cJSON_Delete (report);
    return rc;
}

cJSON *cask_harness_worker_report (cask_harness_t *self, size_t index,
                                   int timeout_ms)
{
    char endpoint [256];
    if (cask_harness_worker_endpoint (self, index, endpoint, sizeof endpoint))
        return NULL;
    return cask_harness_report (self, endpoint, timeout_ms);
}

int64_t cask_harness_json_int (const cJSON *json, const char *path,
                               int64_t fallback)
{
    char name [128];
    const char *start = path;
    while (json && *start) {
        size_t len = strcspn (start, ".");
        if (len >= sizeof name)
            return fallback;
        memcpy (name, start, len);
        name [len] = 0;
        json = cJSON_GetObjectItemCaseSensitive (json, name);
        start += len + (start [len] == '.');
    }
    return cJSON_IsNumber (json) ? (int64_t) json->valuedouble : fallback;
}


//  ---------------------------------------------------------------------
//  Stopping

int cask_harness_stop (cask_harness_t *self)
{
    if (self->stopped)
        return 0;
    bool clean = true;
    //  Workers first, all at once, so they can say BYE to a live broker.
    for (size_t i = 0; i < self->nworkers; i++)
        if (s_proc_alive (&self->workers [i]))
            kill (self->workers [i].pid, SIGTERM);
    for (size_t i = 0; i < self->nworkers; i++)
        clean &= s_proc_stop (&self->workers [i]);
    clean &= s_proc_stop (&self->broker);
    self->stopped = true;
    if (!clean) {
        fprintf (stderr, "cask_harness: the cluster in %s did not stop cleanly\n",
                 self->dir);
        cask_harness_print_logs (self);
    }
    return clean ? 0 : -1;
}

void cask_harness_print_logs (cask_harness_t *self)
{
    fflush (stdout);
    fflush (stderr);
    s_print_logs (self);
}
