/*  cask_local.c - an embedded local cluster: a broker and workers as child
    processes of the client's process.

    Workers are started one at a time by cask_local_add_worker, at creation
    and when the client scales up, all alike (threads, memory limit, log
    and dir under the temp dir); each gets a name never used before in this
    cluster, so a worker's log and dir are its own. Workers that leave
    (retired, or gone by themselves) are reaped by pid and forgotten, so
    that no signal ever reaches a pid the kernel may have given again.
*/
#define _GNU_SOURCE
#include <czmq.h>
#include "cask_local.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CASK_BINDIR
#define CASK_BINDIR "/usr/local/bin"
#endif

//  Grace given to the children to exit after SIGTERM, each group
#define S_STOP_GRACE_MS 5000

typedef struct {
    pid_t pid;                  //  0 once reaped
    int status;                 //  wait status once reaped
    bool leaving;               //  told to leave: reaped by cask_local_reap
    char name [32];             //  "broker", "worker-0", ...
} s_child_t;

struct _cask_local_t {
    char dir [PATH_MAX];        //  the temp dir
    char address [256];
    char worker_bin [PATH_MAX];
    char nthreads [16];         //  every worker's --nthreads
    char memory [32];           //  every worker's --memory-limit
    s_child_t broker;
    s_child_t *workers;         //  the workers not reaped yet
    size_t nworkers;
    size_t capworkers;
    size_t nstarted;            //  workers ever started, which numbers their names
};

static void
s_sleep_ms (int ms)
{
    struct timespec pause = { ms / 1000, (long) (ms % 1000) * 1000000L };
    nanosleep (&pause, NULL);
}

void
cask_local_defaults (long ncores, size_t *nworkers, int *nthreads)
{
    if (ncores < 1)
        ncores = 1;
    if (*nworkers == 0 && *nthreads <= 0) {
        long workers = ncores;
        if (ncores > 4)
            for (workers = 1; workers * workers < ncores || ncores % workers; workers++)
                ;
        *nworkers = (size_t) workers;
        *nthreads = (int) (ncores / workers);
    }
    else
    if (*nworkers == 0)
        *nworkers = (size_t) (ncores / *nthreads > 0 ? ncores / *nthreads : 1);
    else
    if (*nthreads <= 0)
        *nthreads = (int) ((size_t) ncores / *nworkers > 0 ? (size_t) ncores / *nworkers : 1);
}

//  Finds the binary: $env_var, else $CASK_BIN_DIR/name, else CASK_BINDIR/name,
//  else name on $PATH. Returns 0 with the path, or -1 with the reason.
static int
s_find_binary (const char *name, const char *env_var, char *path, size_t size,
               char *error, size_t error_size)
{
    const char *given = getenv (env_var);
    if (given && *given) {
        if (access (given, X_OK)) {
            snprintf (error, error_size, "%s=%s is not an executable: %s", env_var, given,
                      strerror (errno));
            return -1;
        }
        snprintf (path, size, "%s", given);
        return 0;
    }
    const char *bin_dir = getenv ("CASK_BIN_DIR");
    if (bin_dir && *bin_dir) {
        snprintf (path, size, "%s/%s", bin_dir, name);
        if (access (path, X_OK)) {
            snprintf (error, error_size, "CASK_BIN_DIR=%s has no executable %s: %s", bin_dir,
                      name, strerror (errno));
            return -1;
        }
        return 0;
    }
    snprintf (path, size, "%s/%s", CASK_BINDIR, name);
    if (access (path, X_OK) == 0)
        return 0;
    const char *search = getenv ("PATH");
    while (search && *search) {
        const char *colon = strchr (search, ':');
        size_t length = colon ? (size_t) (colon - search) : strlen (search);
        if (length > 0 && length < size) {
            snprintf (path, size, "%.*s/%s", (int) length, search, name);
            if (access (path, X_OK) == 0)
                return 0;
        }
        search = colon ? colon + 1 : NULL;
    }
    snprintf (error, error_size, "cannot find %s (not in %s nor on PATH); set %s or "
              "CASK_BIN_DIR", name, CASK_BINDIR, env_var);
    return -1;
}

//  Forks and execs argv with its output in log. Everything the child does
//  between fork and exec is async-signal-safe (the caller may have threads).
static int
s_spawn (s_child_t *child, const char *log, char *const argv [], char *error,
         size_t error_size)
{
    int log_fd = open (log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        snprintf (error, error_size, "cannot create %s: %s", log, strerror (errno));
        return -1;
    }
    int null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    sigset_t none;
    sigemptyset (&none);
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        //  Die with the parent, even when it is SIGKILLed. The death signal
        //  follows the thread that forked, not the process: a child is
        //  killed as soon as the thread that started it (the local cluster,
        //  or a scale up) exits, even if the process lives on. The parent
        //  may have died before prctl took effect: then we are orphaned.
        if (prctl (PR_SET_PDEATHSIG, SIGKILL) || getppid () != parent)
            _exit (127);
        sigprocmask (SIG_SETMASK, &none, NULL);
        if (null_fd >= 0)
            dup2 (null_fd, STDIN_FILENO);
        dup2 (log_fd, STDOUT_FILENO);
        dup2 (log_fd, STDERR_FILENO);
        //  None of the caller's descriptors (its sockets, pipes) go along
        if (close_range (3, ~0U, 0))
            for (int fd = 3; fd < 1024; fd++)
                close (fd);
        execv (argv [0], argv);
        static const char failed [] = "cask-local: exec failed\n";
        ssize_t written = write (STDERR_FILENO, failed, sizeof failed - 1);
        (void) written;
        _exit (127);
    }
    int fork_errno = errno;
    close (log_fd);
    if (null_fd >= 0)
        close (null_fd);
    if (pid < 0) {
        snprintf (error, error_size, "cannot fork: %s", strerror (fork_errno));
        return -1;
    }
    child->pid = pid;
    return 0;
}

//  True (and the status recorded) once the child has exited
static bool
s_exited (s_child_t *child)
{
    if (child->pid <= 0)
        return true;
    pid_t rc = waitpid (child->pid, &child->status, WNOHANG);
    if (rc == child->pid || (rc < 0 && errno == ECHILD)) {
        child->pid = 0;         //  (ECHILD: the application reaped it)
        return true;
    }
    return false;
}

//  Waits up to grace_ms for the children to exit, SIGKILLs the rest, reaps
//  them all.
static void
s_reap (s_child_t *children, size_t n, int grace_ms)
{
    int64_t deadline = zclock_mono () + grace_ms;
    while (true) {
        bool all = true;
        for (size_t index = 0; index < n; index++)
            all = s_exited (&children [index]) && all;
        if (all || zclock_mono () >= deadline)
            break;
        s_sleep_ms (5);
    }
    for (size_t index = 0; index < n; index++)
        if (children [index].pid > 0) {
            kill (children [index].pid, SIGKILL);
            while (waitpid (children [index].pid, &children [index].status, 0) < 0
                && errno == EINTR)
                ;
            children [index].pid = 0;
        }
}

//  SIGTERM to the children, then s_reap.
static void
s_stop (s_child_t *children, size_t n, int grace_ms)
{
    for (size_t index = 0; index < n; index++)
        if (children [index].pid > 0)
            kill (children [index].pid, SIGTERM);
    s_reap (children, n, grace_ms);
}

static int
s_remove_entry (const char *path, const struct stat *stat, int flag, struct FTW *ftw)
{
    (void) stat; (void) flag; (void) ftw;
    remove (path);
    return 0;
}

//  The last non-empty line of the child's log
static void
s_log_tail (cask_local_t *self, s_child_t *child, char *line, size_t size)
{
    char path [PATH_MAX + 64];
    snprintf (path, sizeof path, "%s/%s.log", self->dir, child->name);
    line [0] = 0;
    FILE *file = fopen (path, "r");
    if (!file)
        return;
    char buffer [512];
    while (fgets (buffer, sizeof buffer, file)) {
        buffer [strcspn (buffer, "\n")] = 0;
        size_t length = strlen (buffer);
        if (length > 0) {
            if (length >= size)
                length = size - 1;
            memcpy (line, buffer, length);
            line [length] = 0;
        }
    }
    fclose (file);
}

static void
s_describe_exit (cask_local_t *self, s_child_t *child, char *error, size_t error_size)
{
    char line [256];
    s_log_tail (self, child, line, sizeof line);
    char how [64];
    if (WIFSIGNALED (child->status))
        snprintf (how, sizeof how, "was killed by signal %d", WTERMSIG (child->status));
    else
        snprintf (how, sizeof how, "exited with status %d", WEXITSTATUS (child->status));
    snprintf (error, error_size, "local cluster: %s %s%s%s", child->name, how,
              line [0] ? ": " : "", line);
}

int
cask_local_check (cask_local_t *self, char *error, size_t error_size)
{
    if (s_exited (&self->broker)) {
        s_describe_exit (self, &self->broker, error, error_size);
        return -1;
    }
    size_t index = 0;
    while (index < self->nworkers) {
        s_child_t *worker = &self->workers [index];
        if (!s_exited (worker)) {
            index++;
            continue;
        }
        //  Status 0 is a worker that left when told to (retired by a client)
        bool failed = !WIFEXITED (worker->status) || WEXITSTATUS (worker->status) != 0;
        if (failed)
            s_describe_exit (self, worker, error, error_size);
        *worker = self->workers [--self->nworkers];
        if (failed)
            return -1;
    }
    return 0;
}

//  Reads the endpoint file once the broker wrote it. Returns 0, or -1 while
//  it is not there.
static int
s_read_endpoint (cask_local_t *self, const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    bool ok = fgets (self->address, sizeof self->address, file) != NULL;
    fclose (file);
    self->address [strcspn (self->address, "\r\n")] = 0;
    return ok && self->address [0] ? 0 : -1;
}

int
cask_local_add_worker (cask_local_t *self, char *error, size_t error_size)
{
    if (self->nworkers == self->capworkers) {
        size_t cap = self->capworkers ? self->capworkers * 2 : 8;
        s_child_t *workers = realloc (self->workers, cap * sizeof *workers);
        if (!workers) {
            snprintf (error, error_size, "out of memory");
            return -1;
        }
        self->workers = workers;
        self->capworkers = cap;
    }
    s_child_t *worker = &self->workers [self->nworkers];
    memset (worker, 0, sizeof *worker);
    snprintf (worker->name, sizeof worker->name, "worker-%zu", self->nstarted++);
    char dir [PATH_MAX + 64], log [PATH_MAX + 64];
    snprintf (dir, sizeof dir, "%s/%s", self->dir, worker->name);
    snprintf (log, sizeof log, "%s/%s.log", self->dir, worker->name);
    char *argv [] = { self->worker_bin, self->address, (char *) "--nthreads", self->nthreads,
                      (char *) "--memory-limit", self->memory, (char *) "--name",
                      worker->name, (char *) "--dir", dir, NULL };
    if (mkdir (dir, 0700)) {
        snprintf (error, error_size, "cannot create %s: %s", dir, strerror (errno));
        return -1;
    }
    if (s_spawn (worker, log, argv, error, error_size))
        return -1;
    self->nworkers++;
    return 0;
}

cask_local_t *
cask_local_new (size_t nworkers, int nthreads, int timeout_ms, char *error,
                size_t error_size)
{
    char broker_bin [PATH_MAX];
    cask_local_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    if (s_find_binary ("cask-broker", "CASK_BROKER_BIN", broker_bin, sizeof broker_bin,
                       error, error_size)
    ||  s_find_binary ("cask-worker", "CASK_WORKER_BIN", self->worker_bin,
                       sizeof self->worker_bin, error, error_size)) {
        free (self);
        return NULL;
    }
    cask_local_defaults (sysconf (_SC_NPROCESSORS_ONLN), &nworkers, &nthreads);
    //  Like Dask's LocalCluster, the workers share the machine's memory
    //  rather than each claiming all of it; workers added later get as much.
    uint64_t physical = (uint64_t) sysconf (_SC_PHYS_PAGES) * (uint64_t) sysconf (_SC_PAGESIZE);
    snprintf (self->nthreads, sizeof self->nthreads, "%d", nthreads);
    snprintf (self->memory, sizeof self->memory, "%" PRIu64, physical / nworkers);

    const char *tmp = getenv ("TMPDIR");
    snprintf (self->dir, sizeof self->dir, "%s/cask-local.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp (self->dir)) {
        snprintf (error, error_size, "cannot create a temp dir %s: %s", self->dir,
                  strerror (errno));
        free (self);
        return NULL;
    }
    char endpoint_file [PATH_MAX + 16], log [PATH_MAX + 64];
    snprintf (endpoint_file, sizeof endpoint_file, "%s/endpoint", self->dir);
    snprintf (log, sizeof log, "%s/broker.log", self->dir);
    snprintf (self->broker.name, sizeof self->broker.name, "broker");
    char *broker_argv [] = { broker_bin, (char *) "--bind", (char *) "tcp://127.0.0.1:*",
                             (char *) "--endpoint-file", endpoint_file, NULL };
    if (s_spawn (&self->broker, log, broker_argv, error, error_size)) {
        cask_local_destroy (&self);
        return NULL;
    }
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : zclock_mono () + timeout_ms;
    while (s_read_endpoint (self, endpoint_file)) {
        if (s_exited (&self->broker)) {
            s_describe_exit (self, &self->broker, error, error_size);
            cask_local_destroy (&self);
            return NULL;
        }
        if (zclock_mono () >= deadline) {
            snprintf (error, error_size, "local cluster: the broker did not bind within %d ms",
                      timeout_ms);
            cask_local_destroy (&self);
            return NULL;
        }
        s_sleep_ms (5);
    }
    for (size_t index = 0; index < nworkers; index++)
        if (cask_local_add_worker (self, error, error_size)) {
            cask_local_destroy (&self);
            return NULL;
        }
    return self;
}

void
cask_local_leaving (cask_local_t *self, const char *name)
{
    for (size_t index = 0; index < self->nworkers; index++)
        if (strcmp (self->workers [index].name, name) == 0)
            self->workers [index].leaving = true;
}

void
cask_local_reap (cask_local_t *self, int grace_ms)
{
    //  The leaving workers go to the end of the array, to be reaped together
    size_t staying = self->nworkers;
    size_t index = 0;
    while (index < staying) {
        if (self->workers [index].leaving) {
            s_child_t leaving = self->workers [index];
            self->workers [index] = self->workers [--staying];
            self->workers [staying] = leaving;
        }
        else
            index++;
    }
    s_reap (self->workers + staying, self->nworkers - staying, grace_ms);
    self->nworkers = staying;
}

void
cask_local_destroy (cask_local_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cask_local_t *self = *self_p;
    *self_p = NULL;
    //  Workers first, so that they say goodbye to a broker still there
    s_stop (self->workers, self->nworkers, S_STOP_GRACE_MS);
    s_stop (&self->broker, 1, S_STOP_GRACE_MS);
    nftw (self->dir, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free (self->workers);
    free (self);
}

const char *
cask_local_address (cask_local_t *self)
{
    return self->address;
}

size_t
cask_local_nworkers (cask_local_t *self)
{
    return self->nworkers;
}
