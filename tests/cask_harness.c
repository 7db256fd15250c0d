/*  cask_harness.c - a real cask cluster for integration tests.

    Three things keep a failing test from hiding its cause or leaving
    processes behind, however it ends (Check ends a failed test in fork
    mode with _exit, a timeout with SIGKILL, so no exit hook would run):

    - every broker and worker is forked with PR_SET_PDEATHSIG, so it dies
      with the test process;
    - a monitor process, forked when the harness is made and moved out of
      the test's process group, waits on a pipe: if the test process goes
      away without cask_harness_destroy, it prints the logs and removes the
      temp dir;
    - a watchdog thread notices a broker or worker that dies on its own
      while the test runs, and aborts the test at once rather than let it
      wait for results that will never come. A worker that exits by itself
      with status 0 was retired by the broker (scale down): it is reaped.
*/
#define _GNU_SOURCE
#include "cask_harness.h"
#include "cask_report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
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
#define WATCH_MS 50                 //  how often the watchdog looks
#define LOG_TAIL (48 * 1024)        //  bytes of each log printed
#define MAX_WORKERS 64

typedef struct {
    pid_t pid;
    char *log;                  //  path of its stdout+stderr
    char *label;                //  "broker", "worker w0"
    int status;                 //  from waitpid, once exited
    bool exited;
    atomic_bool killed;         //  killed on purpose by the test
} s_proc_t;

struct _cask_harness_t {
    char *dir;
    char *endpoint_file;
    char broker_address [256];
    s_proc_t broker;
    char **broker_extra;        //  more arguments for the broker, NULL-terminated
    s_proc_t workers [MAX_WORKERS];
    atomic_size_t nworkers;     //  workers [0..nworkers) are set up
    void *ctx;                  //  for STATUS queries
    pid_t monitor;              //  prints the logs if the test dies
    int monitor_fd;             //  write end of its pipe
    atomic_bool stopping;       //  stop or the watchdog took over
    atomic_bool watching;       //  the watchdog runs
    pthread_t watchdog;
};


//  ---------------------------------------------------------------------
//  Small helpers

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

//  True when the environment variable name is set to anything but "" or
//  "0" (the harness's switches).
static bool s_switch (const char *name)
{
    const char *value = getenv (name);
    return value && *value && strcmp (value, "0") != 0;
}

//  Path of the program name found on $PATH, or NULL. The caller frees it.
static char *s_which (const char *name)
{
    const char *dir = getenv ("PATH");
    while (dir && *dir) {
        size_t len = strcspn (dir, ":");
        char *file = s_strdup_printf ("%.*s/%s", (int) len, dir, name);
        if (file && len > 0 && access (file, X_OK) == 0)
            return file;
        free (file);
        dir += len + (dir [len] == ':');
    }
    return NULL;
}

//  Plain write(2)s: these also run in forked children.
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

//  Prints the last LOG_TAIL bytes of the log at path to stderr.
static void s_print_log (const char *path, const char *label)
{
    s_write_str (STDERR_FILENO, "----- log of ");
    s_write_str (STDERR_FILENO, label);
    s_write_str (STDERR_FILENO, " (");
    s_write_str (STDERR_FILENO, path);
    s_write_str (STDERR_FILENO, ") -----\n");
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        off_t size = lseek (fd, 0, SEEK_END);
        if (size > LOG_TAIL)
            s_write_str (STDERR_FILENO, "[... earlier lines cut ...]\n");
        lseek (fd, size > LOG_TAIL ? size - LOG_TAIL : 0, SEEK_SET);
        char buf [4096];
        ssize_t n;
        while ((n = read (fd, buf, sizeof buf)) > 0)
            s_write_all (STDERR_FILENO, buf, (size_t) n);
        close (fd);
    }
    s_write_str (STDERR_FILENO, "----- end of the log of ");
    s_write_str (STDERR_FILENO, label);
    s_write_str (STDERR_FILENO, " -----\n");
}

static int s_rm_entry (const char *path, const struct stat *st, int flag,
                       struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    remove (path);
    return 0;
}

//  Removes dir and all in it, unless CASK_HARNESS_KEEP asks to keep it.
static void s_remove_dir (const char *dir)
{
    if (s_switch ("CASK_HARNESS_KEEP"))
        fprintf (stderr, "cask_harness: kept %s\n", dir);
    else
        nftw (dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void s_close_fds_from (int first, int except)
{
    long maxfd = sysconf (_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 4096)
        maxfd = 4096;
    for (int fd = first; fd < maxfd; fd++)
        if (fd != except)
            close (fd);
}


//  ---------------------------------------------------------------------
//  The monitor: a child that outlives a test that dies without teardown

static int s_is_log (const struct dirent *entry)
{
    size_t len = strlen (entry->d_name);
    return len > 4 && strcmp (entry->d_name + len - 4, ".log") == 0;
}

static void s_monitor_run (const char *dir, int fd)
{
    //  Out of the test's process group, which Check kills after each test.
    setpgid (0, 0);
    s_close_fds_from (STDERR_FILENO + 1, fd);
    char byte;
    ssize_t n;
    do
        n = read (fd, &byte, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1)
        _exit (0);              //  torn down properly
    //  The test process is gone; its cluster dies with it (PDEATHSIG).
    s_sleep_ms (200);
    fprintf (stderr, "cask_harness: the test ended without stopping its cluster;"
             " the logs of %s follow\n", dir);
    struct dirent **entries;
    int count = scandir (dir, &entries, s_is_log, alphasort);
    for (int i = 0; i < count; i++) {
        char path [4096];
        snprintf (path, sizeof path, "%s/%s", dir, entries [i]->d_name);
        entries [i]->d_name [strlen (entries [i]->d_name) - 4] = 0;
        s_print_log (path, entries [i]->d_name);
    }
    s_remove_dir (dir);
    _exit (0);
}

static int s_monitor_start (cask_harness_t *self)
{
    int fds [2];
    if (pipe2 (fds, O_CLOEXEC))
        return -1;
    fflush (NULL);
    self->monitor = fork ();
    if (self->monitor == 0)
        s_monitor_run (self->dir, fds [0]);
    close (fds [0]);
    if (self->monitor < 0) {
        close (fds [1]);
        return -1;
    }
    self->monitor_fd = fds [1];
    return 0;
}

//  Tells the monitor all went well, and reaps it.
static void s_monitor_release (cask_harness_t *self)
{
    if (self->monitor <= 0)
        return;
    s_write_all (self->monitor_fd, "K", 1);
    close (self->monitor_fd);
    waitpid (self->monitor, NULL, 0);
    self->monitor = 0;
}


//  ---------------------------------------------------------------------
//  Processes

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
    s_close_fds_from (STDERR_FILENO + 1, -1);
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

//  With CASK_HARNESS_VALGRIND set, the broker and workers run under
//  valgrind's memcheck: a memory error or a leak makes the process exit
//  with status 33, which fails the test when the harness stops it.
static const char *const s_valgrind_options [] = {
    "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
    "--error-exitcode=33", "-q", NULL
};

//  argv to run, under valgrind when asked: a new array in *wrapped (free
//  it and its first string), else *wrapped is NULL. Returns 0 or -1.
static int s_valgrind_argv (char *const argv [], char ***wrapped)
{
    *wrapped = NULL;
    if (!s_switch ("CASK_HARNESS_VALGRIND"))
        return 0;
    size_t noptions = sizeof s_valgrind_options / sizeof s_valgrind_options [0] - 1;
    size_t argc = 0;
    while (argv [argc])
        argc++;
    char **command = calloc (1 + noptions + argc + 1, sizeof *command);
    char *valgrind = s_which ("valgrind");
    if (!command || !valgrind) {
        fprintf (stderr, "cask_harness: CASK_HARNESS_VALGRIND is set but %s\n",
                 valgrind ? "memory ran out" : "there is no valgrind on PATH");
        free (command);
        free (valgrind);
        return -1;
    }
    command [0] = valgrind;
    for (size_t i = 0; i < noptions; i++)
        command [1 + i] = (char *) s_valgrind_options [i];
    memcpy (command + 1 + noptions, argv, argc * sizeof *command);
    *wrapped = command;
    return 0;
}

//  How much longer processes take to stop under valgrind (leak checks).
static int s_slowdown (void)
{
    return s_switch ("CASK_HARNESS_VALGRIND") ? 4 : 1;
}

static int s_spawn (s_proc_t *proc, char *const argv [], const char *log,
                    const char *label)
{
    memset (proc, 0, sizeof *proc);
    proc->log = strdup (log);
    proc->label = strdup (label);
    char **wrapped;
    if (s_valgrind_argv (argv, &wrapped)) {
        proc->exited = true;
        return -1;
    }
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0)
        s_child_exec (wrapped ? wrapped : argv, log, parent);
    if (wrapped)
        free (wrapped [0]);
    free (wrapped);
    if (pid < 0) {
        fprintf (stderr, "cask_harness: fork: %s\n", strerror (errno));
        proc->exited = true;
        return -1;
    }
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
        int grace_ms = GRACE_MS * s_slowdown ();
        int64_t deadline = cask_harness_now_ms () + grace_ms;
        while (s_proc_alive (proc) && cask_harness_now_ms () < deadline)
            s_sleep_ms (10);
        if (s_proc_alive (proc)) {
            fprintf (stderr, "cask_harness: %s (pid %d) ignored SIGTERM for %d ms, killing it\n",
                     proc->label, (int) proc->pid, grace_ms);
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
    return s_switch ("CASK_HARNESS_VERBOSE");
}


//  ---------------------------------------------------------------------
//  The cluster

static void s_kill_all (cask_harness_t *self)
{
    for (size_t i = 0; i < self->nworkers; i++)
        if (self->workers [i].pid > 0 && !self->workers [i].exited)
            kill (self->workers [i].pid, SIGKILL);
    if (self->broker.pid > 0 && !self->broker.exited)
        kill (self->broker.pid, SIGKILL);
}

//  A process died by itself while the test ran: nothing will answer the
//  test's requests any more, so end the test now (the monitor prints the
//  logs).
static void s_died (cask_harness_t *self, const s_proc_t *proc, const siginfo_t *info)
{
    if (atomic_exchange (&self->stopping, true))
        return;
    if (info->si_code == CLD_EXITED)
        fprintf (stderr, "cask_harness: %s (pid %d) exited with status %d while the test ran\n",
                 proc->label, (int) proc->pid, info->si_status);
    else
        fprintf (stderr, "cask_harness: %s (pid %d) died of signal %d while the test ran\n",
                 proc->label, (int) proc->pid, info->si_status);
    s_kill_all (self);
    abort ();
}

//  True when proc has exited and nobody meant it to; leaves it waitable.
static bool s_proc_died (s_proc_t *proc, siginfo_t *info)
{
    memset (info, 0, sizeof *info);
    return proc->pid > 0
        && waitid (P_PID, (id_t) proc->pid, info, WEXITED | WNOHANG | WNOWAIT) == 0
        && info->si_pid == proc->pid
        && !atomic_load (&proc->killed);
}

static void *s_watchdog (void *arg)
{
    cask_harness_t *self = (cask_harness_t *) arg;
    while (atomic_load (&self->watching)) {
        siginfo_t info;
        if (s_proc_died (&self->broker, &info))
            s_died (self, &self->broker, &info);
        size_t nworkers = atomic_load (&self->nworkers);
        for (size_t i = 0; i < nworkers; i++)
            if (s_proc_died (&self->workers [i], &info)) {
                if (info.si_code == CLD_EXITED && info.si_status == 0)
                    s_proc_alive (&self->workers [i]);     //  retired: reap it
                else
                    s_died (self, &self->workers [i], &info);
            }
        s_sleep_ms (WATCH_MS);
    }
    return NULL;
}

static void s_watchdog_start (cask_harness_t *self)
{
    atomic_store (&self->watching, true);
    if (pthread_create (&self->watchdog, NULL, s_watchdog, self))
        atomic_store (&self->watching, false);
}

static void s_watchdog_stop (cask_harness_t *self)
{
    if (atomic_exchange (&self->watching, false))
        pthread_join (self->watchdog, NULL);
}

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

//  Starts the broker on a free port, or on the address it had before.
static int s_start_broker (cask_harness_t *self)
{
    char *log = s_strdup_printf ("%s/broker.log", self->dir);
    char *argv [32] = {
        (char *) s_broker_bin (), "--bind",
        *self->broker_address ? self->broker_address : "tcp://127.0.0.1:*",
        "--endpoint-file", self->endpoint_file, "--dashboard", "127.0.0.1:0"
    };
    size_t argc = 7;
    if (s_verbose ())
        argv [argc++] = "--verbose";
    for (size_t e = 0; self->broker_extra && self->broker_extra [e] && argc < 31; e++)
        argv [argc++] = self->broker_extra [e];
    argv [argc] = NULL;
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
    return cask_harness_new_with (NULL);
}

cask_harness_t *cask_harness_new_with (const char *const *broker_extra)
{
    cask_harness_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    size_t nextra = 0;
    while (broker_extra && broker_extra [nextra])
        nextra++;
    self->broker_extra = calloc (nextra + 1, sizeof (char *));
    if (!self->broker_extra) {
        free (self);
        return NULL;
    }
    for (size_t e = 0; e < nextra; e++)
        self->broker_extra [e] = strdup (broker_extra [e]);
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
    if (!self->endpoint_file || !self->ctx || s_monitor_start (self)
    ||  s_start_broker (self)) {
        cask_harness_print_logs (self);
        cask_harness_destroy (&self);
    }
    else
        s_watchdog_start (self);
    return self;
}

cask_harness_t *cask_harness_start (size_t nworkers, int nthreads)
{
    return cask_harness_start_with (nworkers, nthreads, NULL);
}

cask_harness_t *cask_harness_start_with (size_t nworkers, int nthreads,
                                         const char *const *extra)
{
    cask_harness_t *self = cask_harness_new ();
    if (!self)
        return NULL;
    if (cask_harness_add_workers (self, nworkers, nthreads, extra)
    ||  cask_harness_wait_workers (self, nworkers, CASK_HARNESS_TIMEOUT_MS)) {
        cask_harness_print_logs (self);
        cask_harness_destroy (&self);
    }
    return self;
}

void cask_harness_destroy (cask_harness_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cask_harness_t *self = *self_p;
    cask_harness_stop (self);
    s_watchdog_stop (self);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    s_remove_dir (self->dir);
    s_monitor_release (self);
    s_proc_fini (&self->broker);
    for (size_t i = 0; i < self->nworkers; i++)
        s_proc_fini (&self->workers [i]);
    for (size_t e = 0; self->broker_extra && self->broker_extra [e]; e++)
        free (self->broker_extra [e]);
    free (self->broker_extra);
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
        seen = cask_report_nworkers (report);
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

int cask_harness_restart_broker (cask_harness_t *self)
{
    s_proc_t *proc = &self->broker;
    if (!s_proc_alive (proc))
        return -1;
    atomic_store (&proc->killed, true);
    kill (proc->pid, SIGKILL);
    int status;
    waitpid (proc->pid, &status, 0);
    proc->exited = true;
    s_proc_fini (proc);
    remove (self->endpoint_file);
    return s_start_broker (self);
}

int cask_harness_kill_worker (cask_harness_t *self, size_t index)
{
    if (!cask_harness_worker_alive (self, index))
        return -1;
    s_proc_t *proc = &self->workers [index];
    atomic_store (&proc->killed, true);
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
    return cask_report_fetch (self->ctx, endpoint, timeout_ms);
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


int cask_harness_wait_figure (cask_harness_t *self, int index, const char *path,
                              int64_t expect, int timeout_ms, int64_t *seen)
{
    int64_t deadline = cask_harness_now_ms () + timeout_ms;
    int64_t figure = -1;
    for (;;) {
        cJSON *report = index < 0 ? cask_harness_broker_report (self, 5000)
                                  : cask_harness_worker_report (self, (size_t) index, 5000);
        figure = cask_harness_json_int (report, path, -1);
        cJSON_Delete (report);
        if (figure == expect || cask_harness_now_ms () >= deadline)
            break;
        s_sleep_ms (20);
    }
    if (seen)
        *seen = figure;
    return figure == expect ? 0 : -1;
}

int64_t cask_harness_rss (pid_t pid)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/statm", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    long long size, resident;
    int fields = fscanf (file, "%lld %lld", &size, &resident);
    fclose (file);
    return fields == 2 ? resident * (int64_t) sysconf (_SC_PAGESIZE) : -1;
}


//  ---------------------------------------------------------------------
//  Client processes

//  In the forked child: connect, run the body, say so on fd, then wait to
//  be killed. Leaves with _exit, so no exit hook of the test runs.
static void s_client_child (cask_harness_t *self, const char *lib,
                            cask_harness_body_fn *body, void *arg, int fd, pid_t parent)
{
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    if (getppid () != parent)
        _exit (127);
    cask_client_t *client = cask_client_new (self->broker_address, 10000);
    if (!client)
        fprintf (stderr, "cask_harness: client process cannot connect: %s\n",
                 cask_client_last_error ());
    else
    if (lib && cask_client_register (client, lib, 20000)) {
        fprintf (stderr, "cask_harness: client process cannot register %s: %s\n",
                 lib, cask_client_error (client));
        client = NULL;          //  left as it is: the process ends now
    }
    bool ready = client && body (client, arg) == 0;
    s_write_all (fd, ready ? "R" : "F", 1);
    if (!ready)
        _exit (1);
    for (;;)
        pause ();
}

pid_t cask_harness_client_process (cask_harness_t *self, const char *lib,
                                   cask_harness_body_fn *body, void *arg,
                                   int timeout_ms)
{
    int fds [2];
    if (pipe2 (fds, O_CLOEXEC))
        return -1;
    fflush (NULL);
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        close (fds [0]);
        s_client_child (self, lib, body, arg, fds [1], parent);
    }
    close (fds [1]);
    if (pid < 0) {
        close (fds [0]);
        return -1;
    }
    struct pollfd item = { fds [0], POLLIN, 0 };
    char word = 0;
    if (poll (&item, 1, timeout_ms) == 1 && read (fds [0], &word, 1) != 1)
        word = 0;
    close (fds [0]);
    if (word != 'R') {
        fprintf (stderr, "cask_harness: the client process %s\n",
                 word == 'F' ? "failed" : "said nothing in time");
        cask_harness_kill_process (pid);
        return -1;
    }
    return pid;
}

int cask_harness_kill_process (pid_t pid)
{
    if (pid <= 0 || kill (pid, SIGKILL))
        return -1;
    int status;
    return waitpid (pid, &status, 0) == pid ? 0 : -1;
}


//  ---------------------------------------------------------------------
//  Stopping

int cask_harness_stop (cask_harness_t *self)
{
    if (atomic_exchange (&self->stopping, true))
        return 0;
    s_watchdog_stop (self);
    bool clean = true;
    //  Workers first, all at once, so they can say BYE to a live broker.
    for (size_t i = 0; i < self->nworkers; i++)
        if (s_proc_alive (&self->workers [i]))
            kill (self->workers [i].pid, SIGTERM);
    for (size_t i = 0; i < self->nworkers; i++)
        clean &= s_proc_stop (&self->workers [i]);
    clean &= s_proc_stop (&self->broker);
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
    if (self->broker.log)
        s_print_log (self->broker.log, self->broker.label);
    for (size_t i = 0; i < self->nworkers; i++)
        s_print_log (self->workers [i].log, self->workers [i].label);
}


//  ---------------------------------------------------------------------
//  For Check tests

void cask_harness_test_start (cask_harness_t **self_p, size_t nworkers, int nthreads,
                              cask_client_t **client_p, const char *lib)
{
    cask_harness_test_start_with (self_p, nworkers, nthreads, NULL, client_p, lib);
}

void cask_harness_test_start_with (cask_harness_t **self_p, size_t nworkers, int nthreads,
                                   const char *const *extra, cask_client_t **client_p,
                                   const char *lib)
{
    *self_p = cask_harness_start_with (nworkers, nthreads, extra);
    ck_assert_msg (*self_p != NULL, "cannot start a cluster of %zu workers", nworkers);
    if (!client_p)
        return;
    *client_p = cask_harness_client (*self_p, lib);
    ck_assert_msg (*client_p != NULL, "cannot connect%s%s", lib ? " and register " : "",
                   lib ? lib : "");
}

void cask_harness_test_stop (cask_harness_t **self_p, cask_client_t **client_p)
{
    if (client_p)
        cask_client_destroy (client_p);
    int rc = *self_p ? cask_harness_stop (*self_p) : 0;
    cask_harness_destroy (self_p);
    ck_assert_msg (rc == 0, "the cluster did not stop cleanly");
}

//  What cask_harness_fixture asked for; Check's fixtures take no arguments.
static struct {
    cask_harness_t **self_p;
    size_t nworkers;
    int nthreads;
    cask_client_t **client_p;
    const char *lib;
} s_fixture;

static void s_fixture_setup (void)
{
    cask_harness_test_start (s_fixture.self_p, s_fixture.nworkers, s_fixture.nthreads,
                             s_fixture.client_p, s_fixture.lib);
}

static void s_fixture_teardown (void)
{
    cask_harness_test_stop (s_fixture.self_p, s_fixture.client_p);
}

void cask_harness_fixture (TCase *tc, cask_harness_t **self_p, size_t nworkers,
                           int nthreads, cask_client_t **client_p, const char *lib)
{
    s_fixture.self_p = self_p;
    s_fixture.nworkers = nworkers;
    s_fixture.nthreads = nthreads;
    s_fixture.client_p = client_p;
    s_fixture.lib = lib;
    tcase_add_checked_fixture (tc, s_fixture_setup, s_fixture_teardown);
}

int64_t cask_harness_int (cask_client_t *client, cask_future_t *future, int timeout_ms)
{
    ck_assert_msg (future != NULL, "submit failed: %s", cask_client_error (client));
    int64_t value = 0;
    ck_assert_msg (cask_future_int64 (future, timeout_ms, &value) == 0,
                   "future %s: %s", cask_future_key (future), cask_future_error (future));
    return value;
}

cask_future_t *cask_harness_tutorial_graph (cask_client_t *client, size_t n,
                                            cask_future_t **xs, cask_future_t **ys)
{
    for (size_t i = 0; i < n; i++) {
        xs [i] = cask_submit (client, "inc", cask_int64 ((int64_t) i), NULL);
        ck_assert_msg (xs [i] != NULL, "%s", cask_client_error (client));
    }
    cask_value_t *list = cask_list_new (n - 1);
    for (size_t i = 0; i + 1 < n; i++) {
        ys [i] = cask_submit (client, "add", cask_future_arg (xs [i]),
                              cask_future_arg (xs [i + 1]), NULL);
        ck_assert_msg (ys [i] != NULL, "%s", cask_client_error (client));
        cask_list_append (list, cask_future_arg (ys [i]));
    }
    cask_future_t *total = cask_submit (client, "sum", list, NULL);
    ck_assert_msg (total != NULL, "%s", cask_client_error (client));
    return total;
}
