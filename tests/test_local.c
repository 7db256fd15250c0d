/*  test_local.c - the embedded local cluster of cask_client_new (NULL) and
    cask_client_new_local: it runs work, it goes away with its client, its
    processes die with a process that is SIGKILLed, and a missing binary
    fails cleanly. scale(n) adds worker processes that take work at once,
    and retires them (their processes reaped, their results kept).
*/
#define _GNU_SOURCE
#include "cask_harness.h"
#include "cask_testutil.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_MAX_CHILDREN 64

//  The ppid and state of process pid from /proc/PID/stat; -1 when gone
static int
s_proc_stat (pid_t pid, pid_t *ppid, char *state)
{
    char path [64], line [1024];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    bool ok = fgets (line, sizeof line, file) != NULL;
    fclose (file);
    char *paren = ok ? strrchr (line, ')') : NULL;
    int parent;
    if (!paren || sscanf (paren + 1, " %c %d", state, &parent) != 2)
        return -1;
    *ppid = parent;
    return 0;
}

//  The live (not zombie) children of parent, up to max; returns how many
static size_t
s_children (pid_t parent, pid_t *pids, size_t max)
{
    size_t count = 0;
    DIR *proc = opendir ("/proc");
    struct dirent *entry;
    while (proc && (entry = readdir (proc)) && count < max) {
        pid_t pid = atoi (entry->d_name);
        pid_t ppid;
        char state;
        if (pid > 0 && s_proc_stat (pid, &ppid, &state) == 0 && ppid == parent
        &&  state != 'Z' && state != 'X')
            pids [count++] = pid;
    }
    if (proc)
        closedir (proc);
    return count;
}

//  True once process pid is gone (or a zombie nobody reaped yet)
static bool
s_gone (pid_t pid)
{
    pid_t ppid;
    char state;
    return s_proc_stat (pid, &ppid, &state) || state == 'Z' || state == 'X';
}

//  Waits up to timeout_ms for every pid to be gone; returns how many are left
static size_t
s_wait_gone (const pid_t *pids, size_t n, int timeout_ms)
{
    int64_t deadline = cask_harness_now_ms () + timeout_ms;
    while (true) {
        size_t left = 0;
        for (size_t index = 0; index < n; index++)
            left += !s_gone (pids [index]);
        if (left == 0 || cask_harness_now_ms () >= deadline)
            return left;
        usleep (20000);
    }
}

static void
s_register (cask_client_t *client)
{
    ck_assert_msg (cask_client_register (client, cask_harness_tutorial_lib (), 30000) == 0,
                   "register: %s", cask_client_error (client));
}

START_TEST (test_default_client_runs_work)
{
    unsetenv ("CASK_BROKER");
    int64_t start = cask_harness_now_ms ();
    cask_client_t *client = cask_client_new (NULL, 60000);
    ck_assert_msg (client, "cask_client_new (NULL): %s", cask_client_last_error ());
    fprintf (stderr, "test_local: cask_client_new (NULL) took %lld ms (%zu workers)\n",
             (long long) (cask_harness_now_ms () - start), cask_client_nworkers (client));
    size_t expected_workers = 0;
    long cores = sysconf (_SC_NPROCESSORS_ONLN);
    //  Dask's defaults (cask_client.h)
    if (cores <= 4)
        expected_workers = (size_t) cores;
    else
        for (expected_workers = 1; expected_workers * expected_workers < (size_t) cores
                                || cores % expected_workers; expected_workers++)
            ;
    ck_assert_uint_eq (cask_client_nworkers (client), expected_workers);
    ck_assert_msg (strncmp (cask_client_address (client), "tcp://127.0.0.1:", 16) == 0,
                   "address %s", cask_client_address (client));
    s_register (client);
    cask_future_t *future = cask_submit (client, "inc", cask_int64 (1), NULL);
    ck_assert_int_eq (cask_harness_int (client, future, 30000), 2);
    cask_future_destroy (&future);
    cask_client_destroy (&client);
}
END_TEST

START_TEST (test_local_client_goes_with_destroy)
{
    int64_t start = cask_harness_now_ms ();
    cask_client_t *client = cask_client_new_local (2, 1, 60000);
    ck_assert_msg (client, "cask_client_new_local: %s", cask_client_last_error ());
    fprintf (stderr, "test_local: cask_client_new_local (2, 1) took %lld ms\n",
             (long long) (cask_harness_now_ms () - start));
    ck_assert_uint_eq (cask_client_nworkers (client), 2);
    s_register (client);

    //  x = inc(1); y = double(2); z = add(x, y)
    cask_future_t *x = cask_submit (client, "inc", cask_int64 (1), NULL);
    cask_future_t *y = cask_submit (client, "double", cask_int64 (2), NULL);
    ck_assert (x && y);
    cask_future_t *z = cask_submit (client, "add", cask_future_arg (x), cask_future_arg (y),
                                    NULL);
    ck_assert_int_eq (cask_harness_int (client, z, 30000), 6);
    ck_assert_int_eq (cask_harness_int (client, x, 30000), 2);
    cask_future_destroy (&x);
    cask_future_destroy (&y);
    cask_future_destroy (&z);

    //  Another client can use the same cluster while this one lives
    cask_client_t *other = cask_client_new (cask_client_address (client), 10000);
    ck_assert_msg (other, "%s", cask_client_last_error ());
    ck_assert (cask_client_has_function (other, "inc"));
    cask_client_destroy (&other);

    pid_t pids [S_MAX_CHILDREN];
    size_t n = s_children (getpid (), pids, S_MAX_CHILDREN);
    ck_assert_uint_eq (n, 3);                       //  the broker and 2 workers
    cask_client_destroy (&client);
    ck_assert_ptr_null (client);
    //  destroy reaped them: not even zombies are left
    for (size_t index = 0; index < n; index++) {
        char path [64];
        snprintf (path, sizeof path, "/proc/%d", (int) pids [index]);
        ck_assert_msg (access (path, F_OK) != 0, "process %d still there", (int) pids [index]);
    }
    ck_assert_uint_eq (s_children (getpid (), pids, S_MAX_CHILDREN), 0);
    cask_client_destroy (&client);                  //  safe twice
}
END_TEST

//  scale up: new worker processes that take work; scale down: the results
//  move to the worker that stays and the retired processes are reaped
START_TEST (test_local_scale_up_and_down)
{
    cask_client_t *client = cask_client_new_local (1, 1, 60000);
    ck_assert_msg (client, "cask_client_new_local: %s", cask_client_last_error ());
    s_register (client);
    ck_assert_msg (cask_client_scale (client, 3, 60000) == 0, "%s", cask_client_error (client));
    ck_assert_uint_eq (cask_client_nworkers (client), 3);
    pid_t pids [S_MAX_CHILDREN];
    ck_assert_uint_eq (s_children (getpid (), pids, S_MAX_CHILDREN), 4);

    enum { N = 30 };
    int64_t inputs [N];
    for (int i = 0; i < N; i++)
        inputs [i] = 1000000 + i;
    cask_future_t *futures [N];
    ck_assert_int_eq (cask_map (client, "count_primes_less_than", cask_list_of_int64 (inputs, N),
                                futures), 0);
    //  Every worker takes work at once; then two retire while the map runs
    ck_assert_int_eq (cask_wait (client, futures, N, CASK_WAIT_ALL, 0), 0);
    ck_assert_int_ge (cask_wait (client, futures, N, CASK_WAIT_FIRST, 60000), 1);
    cask_cluster_info_t *info = cask_client_info (client, 10000);
    ck_assert_ptr_nonnull (info);
    for (size_t i = 0; i < info->nworkers; i++)
        ck_assert_msg (info->workers [i].tasks_done + info->workers [i].inflight > 0,
                       "worker %s has no work", info->workers [i].endpoint);
    cask_cluster_info_destroy (&info);

    ck_assert_msg (cask_client_scale (client, 1, 60000) == 0, "%s", cask_client_error (client));
    ck_assert_int_eq (cask_gather (client, futures, N, 60000), 0);
    ck_assert_uint_eq (cask_client_nworkers (client), 1);
    ck_assert_uint_eq (s_children (getpid (), pids, S_MAX_CHILDREN), 2);
    info = cask_client_info (client, 10000);
    ck_assert_uint_eq (info->nworkers, 1);
    ck_assert_uint_ge (info->workers [0].bytes_cached, N * sizeof (int64_t));
    cask_cluster_info_destroy (&info);
    for (int i = 0; i < N; i++) {
        int64_t count;
        ck_assert_msg (cask_future_int64 (futures [i], 30000, &count) == 0, "%s",
                       cask_future_error (futures [i]));
        ck_assert_int_gt (count, 78000);
    }
    cask_futures_destroy (futures, N);
    ck_assert_int_eq (cask_client_scale (client, 1, 1000), 0);      //  as many already
    cask_client_destroy (&client);
    ck_assert_uint_eq (s_children (getpid (), pids, S_MAX_CHILDREN), 0);
}
END_TEST

static int
s_remove_entry (const char *path, const struct stat *stat, int flag, struct FTW *ftw)
{
    (void) stat; (void) flag; (void) ftw;
    return remove (path);
}

START_TEST (test_children_die_with_a_killed_process)
{
    //  Nobody removes the temp dir of a cluster whose process was killed
    char tmp [] = "/tmp/cask-test-local.XXXXXX";
    ck_assert_ptr_nonnull (mkdtemp (tmp));
    setenv ("TMPDIR", tmp, 1);
    int channel [2];
    ck_assert_int_eq (pipe (channel), 0);
    pid_t child = fork ();
    ck_assert_int_ge (child, 0);
    if (child == 0) {
        close (channel [0]);
        cask_client_t *client = cask_client_new_local (2, 1, 60000);
        pid_t pids [S_MAX_CHILDREN];
        size_t n = client ? s_children (getpid (), pids, S_MAX_CHILDREN) : 0;
        ssize_t written = write (channel [1], &n, sizeof n);
        if (n)
            written = write (channel [1], pids, n * sizeof pids [0]);
        (void) written;
        while (true)
            pause ();
    }
    close (channel [1]);
    size_t n = 0;
    pid_t pids [S_MAX_CHILDREN];
    ck_assert_int_eq (read (channel [0], &n, sizeof n), (ssize_t) sizeof n);
    if (n == 3)
        ck_assert_int_eq (read (channel [0], pids, n * sizeof pids [0]),
                          (ssize_t) (n * sizeof pids [0]));
    close (channel [0]);
    kill (child, SIGKILL);
    waitpid (child, NULL, 0);
    ck_assert_uint_eq (n, 3);
    ck_assert_uint_eq (s_wait_gone (pids, n, 5000), 0);
    ck_assert_int_eq (nftw (tmp, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}
END_TEST

//  The entries of dir other than . and ..
static size_t
s_entries (const char *dir)
{
    size_t count = 0;
    DIR *handle = opendir (dir);
    struct dirent *entry;
    while (handle && (entry = readdir (handle)))
        count += strcmp (entry->d_name, ".") && strcmp (entry->d_name, "..");
    if (handle)
        closedir (handle);
    return count;
}

START_TEST (test_unusable_broker_binary)
{
    char tmp [] = "/tmp/cask-test-local.XXXXXX";
    ck_assert_ptr_nonnull (mkdtemp (tmp));
    setenv ("TMPDIR", tmp, 1);
    pid_t pids [S_MAX_CHILDREN];

    //  Not there: said before anything starts
    setenv ("CASK_BROKER_BIN", "/nonexistent/cask-broker", 1);
    cask_client_t *client = cask_client_new_local (1, 1, 10000);
    ck_assert_ptr_null (client);
    fprintf (stderr, "test_local: %s\n", cask_client_last_error ());
    ck_assert_ptr_nonnull (strstr (cask_client_last_error (),
                                   "CASK_BROKER_BIN=/nonexistent/cask-broker"));
    ck_assert_uint_eq (s_entries (tmp), 0);

    //  A program that exits at once: its exit status is the reason
    setenv ("CASK_BROKER_BIN", "/bin/false", 1);
    client = cask_client_new_local (1, 1, 10000);
    ck_assert_ptr_null (client);
    fprintf (stderr, "test_local: %s\n", cask_client_last_error ());
    ck_assert_ptr_nonnull (strstr (cask_client_last_error (),
                                   "broker exited with status 1"));
    ck_assert_uint_eq (s_entries (tmp), 0);
    ck_assert_uint_eq (s_children (getpid (), pids, S_MAX_CHILDREN), 0);

    //  The default client too, when no broker is named
    unsetenv ("CASK_BROKER");
    client = cask_client_new (NULL, 10000);
    ck_assert_ptr_null (client);
    ck_assert_ptr_nonnull (strstr (cask_client_last_error (), "broker exited"));
    ck_assert_uint_eq (s_entries (tmp), 0);
    ck_assert_uint_eq (s_children (getpid (), pids, S_MAX_CHILDREN), 0);
    rmdir (tmp);
}
END_TEST

int main (void)
{
    TCase *tc = tcase_create ("local");
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_default_client_runs_work);
    tcase_add_test (tc, test_local_client_goes_with_destroy);
    tcase_add_test (tc, test_local_scale_up_and_down);
    tcase_add_test (tc, test_children_die_with_a_killed_process);
    tcase_add_test (tc, test_unusable_broker_binary);
    return cask_test_run ("local", tc, NULL);
}
