/*  cask_worker_main.c - the cask-worker command: options, signals, the
    working directory for task libraries, and the nanny.

    Without --dir the worker makes a fresh directory under /tmp and removes
    it at exit; a directory given with --dir is the user's and is kept.

    The nanny: unless --no-nanny, the process started is a nanny that runs
    the worker in a child process and starts it again when it dies (a task
    that crashed it, a kill, the memory it ran out of), after a delay that
    grows while it keeps dying young. The new worker tells the broker which
    worker it replaces and how that one died, so the broker can count the
    death against the tasks that were running there. The child dies with
    the nanny (PR_SET_PDEATHSIG); SIGINT and SIGTERM are passed on to it.

    The process exits with 0 when a signal stops it or the broker retires
    it, 1 when it cannot start or its sockets fail, 2 on a bad option.
*/
#include "cask_worker.h"
#include "cask_log.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_DEFAULT_LISTEN "tcp://127.0.0.1:*"
#define S_DEFAULT_FETCH_TIMEOUT_MS 30000
#define S_MAX_THREADS 4096

#define S_EXIT_STUCK 4                  //  a task would not stop: start again
#define S_EXIT_MEMORY 5                 //  past the memory limit: start again
#define S_RESTART_DELAY_MS 100          //  before a dead worker starts again
#define S_RESTART_DELAY_MAX_MS 5000     //  while it keeps dying young
#define S_YOUNG_MS 10000

static volatile sig_atomic_t s_interrupted = 0;
static volatile pid_t s_child = 0;      //  the nanny's worker process

static void
s_on_signal (int signum)
{
    s_interrupted = 1;
    if (s_child > 0)
        kill (s_child, signum);
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: cask-worker BROKER_ADDRESS [options]\n"
        "\n"
        "Runs tasks for the cask broker at BROKER_ADDRESS (tcp://host:port or host:port).\n"
        "\n"
        "  --nthreads N          executor threads (default: the number of cores)\n"
        "  --listen ENDPOINT     peer endpoint to bind (default: " S_DEFAULT_LISTEN ")\n"
        "  --dir DIR             directory for task libraries (default: a fresh\n"
        "                        /tmp/cask-worker-XXXXXX, removed at exit)\n"
        "  --name NAME           name in logs and reports, and the name tasks may ask\n"
        "                        for to run here (default: worker-HOST-PID)\n"
        "  --resources NAME=AMOUNT[,NAME=AMOUNT...]\n"
        "                        what this worker has, e.g. GPU=2,MEM=1e9 (at most %d,\n"
        "                        amounts positive, up to 1e300; may be repeated): a\n"
        "                        task that asks for GPU=1 runs here only while the\n"
        "                        tasks running here use at most 2 GPU in all\n"
        "  --memory-limit BYTES  memory the broker may count on, with an optional\n"
        "                        K, M, G or T suffix (default: physical memory); past\n"
        "                        60%% of it, results spill to disk (least recently used\n"
        "                        first, into the --dir directory) and are read back when\n"
        "                        needed; a value larger than it is refused; when the\n"
        "                        resident memory it grew by since it started passes 80%%\n"
        "                        of it, the worker pauses (no new task) until under 70%%;\n"
        "                        past 100%% the nanny restarts it\n"
        "  --fetch-timeout MS    give up on a silent peer after MS (default: %d)\n"
        "  --no-nanny            run the worker in this process: nothing restarts it\n"
        "                        when it dies (by default a nanny process does)\n"
        "  --heartbeat MS        heartbeat the broker every MS (default: %d); a broker\n"
        "                        silent for %d of its intervals is taken for gone: the\n"
        "                        worker drops everything and connects again\n"
        "  --curve-cert FILE     use CurveZMQ: encrypt all traffic, with the key pair in\n"
        "                        FILE and FILE_secret (made by cask-keygen), which every\n"
        "                        worker of the cluster shares: clients and workers use\n"
        "                        its public key to reach the peer socket; needs\n"
        "  --curve-broker-key KEY  the broker's public key: its certificate file, or its\n"
        "                        40 characters of Z85 text, and\n"
        "  --curve-allow DIR     the public certificates of the clients and workers let\n"
        "                        into the peer socket\n"
        "  --verbose             log what happens, not only problems\n"
        "  --log-format FORMAT   log lines as text (default) or json, one object a line\n"
        "  --log-level LEVEL     log error, warning (default), info or debug lines and\n"
        "                        those above (overrides --verbose)\n"
        "  --help                show this and exit\n"
        "\n"
        "Exits with 0 when stopped by SIGINT or SIGTERM, or retired by the broker; with\n"
        "--no-nanny, 4 when a task ran past its time limit and does not return, 5 when\n"
        "the process went past its memory limit (a nanny starts the worker again).\n",
        CASK_MAX_RESOURCES, S_DEFAULT_FETCH_TIMEOUT_MS, CASK_HEARTBEAT_MS,
        CASK_HEARTBEAT_LIVENESS);
}

//  "host:port" becomes "tcp://host:port"; anything with a scheme is kept.
static void
s_endpoint (const char *address, char *endpoint, size_t size)
{
    if (strstr (address, "://"))
        snprintf (endpoint, size, "%s", address);
    else
        snprintf (endpoint, size, "tcp://%s", address);
}

//  Reads a positive count with an optional binary suffix. Returns 0 or -1.
static int
s_parse_size (const char *text, uint64_t *value)
{
    char *end;
    errno = 0;
    unsigned long long number = strtoull (text, &end, 10);
    if (errno || end == text || text [0] == '-')
        return -1;
    const char *suffixes = "KMGT";
    const char *suffix = *end ? strchr (suffixes, *end) : NULL;
    if (suffix) {
        for (const char *step = suffixes; step <= suffix; step++) {
            if (number > ULLONG_MAX / 1024)
                return -1;
            number *= 1024;
        }
        end++;
    }
    if (*end)
        return -1;
    *value = number;
    return 0;
}

static uint64_t
s_physical_memory (void)
{
    long pages = sysconf (_SC_PHYS_PAGES);
    long page_size = sysconf (_SC_PAGESIZE);
    return pages > 0 && page_size > 0 ? (uint64_t) pages * (uint64_t) page_size : 0;
}

static uint32_t
s_cores (void)
{
    long cores = sysconf (_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (uint32_t) cores : 1;
}

//  Removes the directory the worker made, with the libraries in it.
static void
s_remove_dir (const char *path)
{
    DIR *dir = opendir (path);
    if (dir) {
        struct dirent *entry;
        while ((entry = readdir (dir))) {
            if (strcmp (entry->d_name, ".") && strcmp (entry->d_name, ".."))
                unlinkat (dirfd (dir), entry->d_name, 0);
        }
        closedir (dir);
    }
    if (rmdir (path))
        fprintf (stderr, "W: cannot remove %s: %s\n", path, strerror (errno));
}

static int
s_prepare_dir (const char *path)
{
    struct stat info;
    if (mkdir (path, 0700) && errno != EEXIST) {
        fprintf (stderr, "E: cannot make %s: %s\n", path, strerror (errno));
        return -1;
    }
    if (stat (path, &info) || !S_ISDIR (info.st_mode)) {
        fprintf (stderr, "E: %s is not a directory\n", path);
        return -1;
    }
    return 0;
}

static void
s_handle_signals (void)
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset (&action.sa_mask);
    //  No SA_RESTART: the signal must interrupt zmq_poll
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
}

typedef struct {
    char broker [PATH_MAX];
    char listen [PATH_MAX];
    char dir [PATH_MAX];
    char name [256];
    bool made_dir;
    bool no_nanny;
    const char *curve_cert;     //  --curve-*, from argv
    const char *curve_broker_key;
    const char *curve_allow;
    cask_worker_config_t config;
} s_options_t;

//  Adds the resources of --resources LIST (from argv, which outlives the
//  views into it) to the options. Returns 0, or -1 after saying what is
//  wrong.
static int
s_parse_resources (s_options_t *options, const char *list)
{
    cask_worker_config_t *config = &options->config;
    char why [300];
    if (cask_resources_parse (list, config->resources, &config->nresources, why, sizeof why) == 0)
        return 0;
    fprintf (stderr, "E: --resources \"%s\": %s\n", list, why);
    return -1;
}

//  Parses the command line. Returns 0 to run, 1 to exit successfully
//  (--help), -1 on a usage error.
static int
s_parse_options (s_options_t *options, int argc, char *argv [])
{
    static const struct option longopts [] = {
        { "nthreads", required_argument, NULL, 'n' },
        { "listen", required_argument, NULL, 'l' },
        { "dir", required_argument, NULL, 'd' },
        { "name", required_argument, NULL, 'N' },
        { "resources", required_argument, NULL, 'r' },
        { "memory-limit", required_argument, NULL, 'm' },
        { "fetch-timeout", required_argument, NULL, 't' },
        { "heartbeat", required_argument, NULL, 'H' },
        { "no-nanny", no_argument, NULL, 'X' },
        { "curve-cert", required_argument, NULL, 'C' },
        { "curve-broker-key", required_argument, NULL, 'B' },
        { "curve-allow", required_argument, NULL, 'A' },
        { "verbose", no_argument, NULL, 'v' },
        { "log-format", required_argument, NULL, 'F' },
        { "log-level", required_argument, NULL, 'L' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    cask_worker_config_t *config = &options->config;
    config->nthreads = s_cores ();
    config->memory_limit = s_physical_memory ();
    config->fetch_timeout_ms = S_DEFAULT_FETCH_TIMEOUT_MS;
    s_endpoint (S_DEFAULT_LISTEN, options->listen, sizeof options->listen);
    char host [64] = "localhost";
    gethostname (host, sizeof host - 1);
    snprintf (options->name, sizeof options->name, "worker-%s-%d", host, (int) getpid ());

    int option;
    uint64_t number;
    while ((option = getopt_long (argc, argv, "vh", longopts, NULL)) != -1) {
        switch (option) {
            case 'n':
                if (s_parse_size (optarg, &number) || number == 0 || number > S_MAX_THREADS) {
                    fprintf (stderr, "E: --nthreads takes 1 to %d\n", S_MAX_THREADS);
                    return -1;
                }
                config->nthreads = (uint32_t) number;
                break;
            case 'l':
                s_endpoint (optarg, options->listen, sizeof options->listen);
                break;
            case 'd':
                snprintf (options->dir, sizeof options->dir, "%s", optarg);
                break;
            case 'N':
                if (strlen (optarg) == 0 || strlen (optarg) > 255) {
                    fprintf (stderr, "E: --name takes 1 to 255 bytes\n");
                    return -1;
                }
                snprintf (options->name, sizeof options->name, "%s", optarg);
                break;
            case 'r':
                if (s_parse_resources (options, optarg))
                    return -1;
                break;
            case 'm':
                if (s_parse_size (optarg, &config->memory_limit)) {
                    fprintf (stderr, "E: --memory-limit takes a size in bytes\n");
                    return -1;
                }
                break;
            case 't':
                if (s_parse_size (optarg, &number) || number == 0 || number > INT_MAX) {
                    fprintf (stderr, "E: --fetch-timeout takes milliseconds\n");
                    return -1;
                }
                config->fetch_timeout_ms = (int) number;
                break;
            case 'X':
                options->no_nanny = true;
                break;
            case 'H':
                if (s_parse_size (optarg, &number) || number < 10 || number > 600000) {
                    fprintf (stderr, "E: --heartbeat takes 10 to 600000 milliseconds\n");
                    return -1;
                }
                config->heartbeat_ms = (uint32_t) number;
                break;
            case 'C':
                options->curve_cert = optarg;
                break;
            case 'B':
                options->curve_broker_key = optarg;
                break;
            case 'A':
                options->curve_allow = optarg;
                break;
            case 'v':
                config->verbose = true;
                break;
            case 'F':
                if (cask_log_set_format (optarg)) {
                    fprintf (stderr, "E: --log-format takes text or json\n");
                    return -1;
                }
                break;
            case 'L':
                if (cask_log_set_level (optarg)) {
                    fprintf (stderr, "E: --log-level takes error, warning, info or debug\n");
                    return -1;
                }
                break;
            case 'h':
                s_usage (stdout);
                return 1;
            default:
                s_usage (stderr);
                return -1;
        }
    }
    if (optind != argc - 1) {
        s_usage (stderr);
        return -1;
    }
    s_endpoint (argv [optind], options->broker, sizeof options->broker);
    return 0;
}

//  The worker's CurveZMQ from --curve-*, all three needed, into
//  config.curve: its pair serves the peer socket too, so the workers' key is
//  its own public key. Made before the nanny forks, so that a bad option
//  stops it at once; the ZAP handler starts in the worker process. Returns
//  0, or -1 after saying what is wrong.
static int
s_curve_from_options (s_options_t *options)
{
    if (!options->curve_cert && !options->curve_broker_key && !options->curve_allow)
        return 0;
    if (!options->curve_cert || !options->curve_broker_key || !options->curve_allow) {
        fprintf (stderr, "E: --curve-cert, --curve-broker-key and --curve-allow go together\n");
        return -1;
    }
    cask_curve_t *curve = cask_curve_new (options->name);
    if (curve
    &&  cask_curve_load (curve, options->curve_cert) == 0
    &&  cask_curve_set_broker_key (curve, options->curve_broker_key) == 0
    &&  cask_curve_set_workers_key (curve, cask_curve_public_key (curve)) == 0
    &&  cask_curve_set_allowed (curve, options->curve_allow) == 0) {
        options->config.curve = curve;
        return 0;
    }
    fprintf (stderr, "E: %s\n", curve ? cask_curve_error (curve) : "out of memory");
    cask_curve_destroy (&curve);
    return -1;
}

//  Runs the worker in this process until it stops. Returns the exit status.
static int
s_run_worker (s_options_t *options)
{
    cask_worker_t *worker = cask_worker_new (&options->config);
    if (!worker) {
        fprintf (stderr, "E: cannot start the worker\n");
        return 1;
    }
    int rc = cask_worker_run (worker) ? 1
           : cask_worker_stuck (worker) ? S_EXIT_STUCK
           : cask_worker_over_memory (worker) ? S_EXIT_MEMORY : 0;
    cask_worker_destroy (&worker);
    return rc;
}

//  The worker process: dies with the nanny, tells it its ids.
static void
s_nanny_child (s_options_t *options, int ids [2], pid_t nanny)
{
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    if (getppid () != nanny)
        _exit (1);
    close (ids [0]);
    options->config.nanny_fd = ids [1];
    _exit (s_run_worker (options));
}

//  The last id the worker told the nanny, or last.
static uint32_t
s_last_id (int fd, uint32_t last)
{
    uint32_t id;
    while (read (fd, &id, sizeof id) == (ssize_t) sizeof id)
        last = id;
    return last;
}

//  Collects into running (str8 entries) the keys the executors of a dead
//  worker were running, from their slots, and empties the slots.
static uint16_t
s_running_keys (char *slots, uint32_t nthreads, cask_buf_t *running)
{
    cask_buf_reset (running);
    uint16_t count = 0;
    for (uint32_t index = 0; index < nthreads && count < UINT16_MAX; index++) {
        char *slot = slots + (size_t) index * (CASK_MAX_KEY + 1);
        slot [CASK_MAX_KEY] = 0;
        if (*slot) {
            cask_put_str8 (running, cask_str (slot));
            count++;
        }
        *slot = 0;
    }
    return running->failed ? 0 : count;
}

//  Runs the worker in child processes, one after the other while they die.
//  Returns the exit status of the last.
static int
s_nanny (s_options_t *options)
{
    int ids [2];
    size_t slots_size = (size_t) options->config.nthreads * (CASK_MAX_KEY + 1);
    char *slots = (char *) mmap (NULL, slots_size, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED || pipe (ids) || fcntl (ids [0], F_SETFL, O_NONBLOCK)) {
        fprintf (stderr, "E: cannot set up the nanny: %s\n", strerror (errno));
        return 1;
    }
    options->config.slots = slots;
    cask_buf_t running;
    cask_buf_init (&running);
    char death [128] = "";
    uint32_t id = 0;
    int delay_ms = 0, status = 0;
    while (!s_interrupted) {
        options->config.replaces = id;
        options->config.death = death;
        options->config.running = (cask_str_t) { (const char *) running.data, running.size };
        int64_t started = zclock_mono ();
        pid_t nanny = getpid ();
        pid_t pid = fork ();
        if (pid == 0)
            s_nanny_child (options, ids, nanny);
        if (pid < 0) {
            fprintf (stderr, "E: cannot start the worker process: %s\n", strerror (errno));
            return 1;
        }
        s_child = pid;
        while (waitpid (pid, &status, 0) == -1 && errno == EINTR)
            ;
        s_child = 0;
        uint32_t told = s_last_id (ids [0], 0);
        bool exited = WIFEXITED (status);
        //  Stopped, retired, or could not even start: nothing to restart
        if (s_interrupted || (exited && WEXITSTATUS (status) == 0)
        ||  (exited && WEXITSTATUS (status) == 1 && told == 0))
            break;
        id = told ? told : id;
        options->config.nrunning = s_running_keys (slots, options->config.nthreads, &running);
        if (exited && WEXITSTATUS (status) == S_EXIT_MEMORY)
            snprintf (death, sizeof death, "it used more than its memory limit");
        else
        if (exited && WEXITSTATUS (status) == S_EXIT_STUCK)
            snprintf (death, sizeof death, "a task ran past its time limit and did not stop");
        else
        if (exited)
            snprintf (death, sizeof death, "exit status %d", WEXITSTATUS (status));
        else
            snprintf (death, sizeof death, "signal %d (%s)", WTERMSIG (status),
                      strsignal (WTERMSIG (status)));
        bool young = zclock_mono () - started < S_YOUNG_MS;
        delay_ms = !young ? S_RESTART_DELAY_MS
                 : delay_ms * 2 > S_RESTART_DELAY_MAX_MS ? S_RESTART_DELAY_MAX_MS
                 : delay_ms ? delay_ms * 2 : S_RESTART_DELAY_MS;
        fprintf (stderr, "E: worker %u died (%s) while it ran %u tasks: starting it again "
                 "in %d ms\n", id, death, options->config.nrunning, delay_ms);
        struct timespec pause = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
        nanosleep (&pause, NULL);
    }
    close (ids [0]);
    close (ids [1]);
    munmap (slots, slots_size);
    cask_buf_free (&running);
    return WIFEXITED (status) ? WEXITSTATUS (status) : 1;
}

int
main (int argc, char *argv [])
{
    s_options_t options;
    memset (&options, 0, sizeof options);
    int parsed = s_parse_options (&options, argc, argv);
    if (parsed)
        return parsed > 0 ? 0 : 2;
    if (s_curve_from_options (&options))
        return 2;

    if (options.dir [0] == 0) {
        snprintf (options.dir, sizeof options.dir, "/tmp/cask-worker-XXXXXX");
        if (!mkdtemp (options.dir)) {
            fprintf (stderr, "E: cannot make a directory in /tmp: %s\n", strerror (errno));
            cask_curve_destroy (&options.config.curve);
            return 1;
        }
        options.made_dir = true;
    }
    else
    if (s_prepare_dir (options.dir)) {
        cask_curve_destroy (&options.config.curve);
        return 1;
    }

    s_handle_signals ();
    options.config.broker = options.broker;
    options.config.listen = options.listen;
    options.config.dir = options.dir;
    options.config.name = options.name;
    options.config.interrupted = &s_interrupted;
    options.config.own_process = true;
    int rc = options.no_nanny ? s_run_worker (&options) : s_nanny (&options);
    if (options.made_dir)
        s_remove_dir (options.dir);
    cask_curve_destroy (&options.config.curve);
    return rc;
}
