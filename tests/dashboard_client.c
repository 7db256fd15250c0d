/*  dashboard_client.c - the client of tests/test_dashboard.sh: keeps a graph
    running on the cluster while headless Chromium looks at the dashboard.

    Usage: dashboard_client ADDRESS LIBRARY CHAINS LENGTH NAP_MS SECONDS [W1 W2]

    LIBRARY is tests/libcask_testlib.so. Submits the graph in waves; a wave is
      - CHAINS chains of LENGTH naps, nap (NAP_MS, previous nap), the first
        nap (NAP_MS, x) with x unique to the chain and the wave, so that
        every nap of a chain must come back as x (the graph page draws the
        chains; results move between the workers, the task stream's red);
      - CHAINS / 4 pairs of make_bytes (1 MiB, seed, NAP_MS) and the
        digest of each pair; with worker names W1 and W2, the first of
        each pair must run on W1, the second on W2 (submit option
        "workers"), so every digest fetches an input from a peer: the
        task stream has transfers to draw;
      - crash ("dashboard wave N"), which errs ("unknown way to crash"), so the
        erred count and the error colour have something to show.
    When a wave is done, its values are checked and the next wave goes in;
    the client holds the futures of the last two waves, so the broker's
    graph is never empty while it runs. It prints "progress DONE/TOTAL MS"
    whenever the number of done futures of the current wave changes, and
    "wave N ok" after each checked wave. It stops on SIGTERM or SIGINT, or
    after SECONDS, releases everything and exits 0 if every value checked
    was right, 1 otherwise (2 on bad usage).
*/
#include <cask/cask.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cask_testclient.h"
#include "cask_testlib.h"

#define S_BYTES_SIZE (1024 * 1024)

static volatile sig_atomic_t s_stop;

static void
s_on_signal (int signum)
{
    (void) signum;
    s_stop = 1;
}

//  One wave's futures: the chains' naps (chain c's nap j at c * length + j),
//  then the digests, the bytes they digest and the crash.
typedef struct {
    cask_future_t **futures;
    size_t count;               //  all of them
    size_t naps, pairs;
    int64_t first_x;            //  chain c's naps are all first_x + c
    int number;
} s_wave_t;

//  Where the halves of the pairs must run (NULL: anywhere)
static const char *s_pin [2];

static void
s_wave_destroy (s_wave_t *wave)
{
    if (wave->futures) {
        cask_futures_destroy (wave->futures, wave->count);
        free (wave->futures);
    }
    memset (wave, 0, sizeof *wave);
}

//  Submits wave number; returns 0, or -1 (and says why)
static int
s_wave_submit (cask_client_t *client, s_wave_t *wave, int number,
               size_t chains, size_t length, int64_t nap_ms)
{
    memset (wave, 0, sizeof *wave);
    wave->number = number;
    wave->naps = chains * length;
    wave->pairs = chains / 4;
    wave->count = wave->naps + 3 * wave->pairs + 1;
    wave->first_x = (int64_t) number * 1000000;
    wave->futures = calloc (wave->count, sizeof *wave->futures);
    if (!wave->futures) {
        cask_testclient_fail ("out of memory");
        return -1;
    }
    cask_future_t **digests = wave->futures + wave->naps;
    cask_future_t **bytes = digests + wave->pairs;
    //  Chain by chain, a pair of bytes and its digest now and then, so
    //  that every function runs all along the wave
    for (size_t c = 0; c < chains; c++) {
        cask_future_t **chain = wave->futures + c * length;
        for (size_t j = 0; j < length; j++) {
            cask_value_t *x = j ? cask_future_arg (chain [j - 1])
                                : cask_int64 (wave->first_x + (int64_t) c);
            if (!(chain [j] = cask_submit (client, "nap", cask_int64 (nap_ms), x, NULL))) {
                cask_testclient_fail ("submit nap %zu of chain %zu: %s", j, c,
                                      cask_client_error (client));
                return -1;
            }
        }
        size_t pair = c / 4;
        if (c % 4 == 3 && pair < wave->pairs) {
            for (size_t k = 0; k < 2; k++) {
                cask_submit_opts_t opts = CASK_SUBMIT_DEFAULT;
                opts.workers = s_pin [k];
                cask_value_t *args [3] = {
                    cask_int64 (S_BYTES_SIZE),
                    cask_int64 (wave->first_x + (int64_t) (2 * pair + k)),
                    cask_int64 (nap_ms)
                };
                if (!(bytes [2 * pair + k] = cask_submit_opts (client, "make_bytes", &opts, args, 3))) {
                    cask_testclient_fail ("submit make_bytes: %s", cask_client_error (client));
                    return -1;
                }
            }
            if (!(digests [pair] = cask_submit (client, "digest",
                                                cask_future_arg (bytes [2 * pair]),
                                                cask_future_arg (bytes [2 * pair + 1]), NULL))) {
                cask_testclient_fail ("submit digest: %s", cask_client_error (client));
                return -1;
            }
        }
    }
    //  Its own key each wave (a key is the function and its arguments)
    char how [64];
    snprintf (how, sizeof how, "dashboard wave %d", number);
    if (!(wave->futures [wave->count - 1] = cask_submit (client, "crash", cask_string (how), NULL))) {
        cask_testclient_fail ("submit crash: %s", cask_client_error (client));
        return -1;
    }
    return 0;
}

//  Fetches a done wave's values and checks them (the first wrong one of
//  each kind is told)
static void
s_wave_check (cask_client_t *client, s_wave_t *wave, size_t length, uint8_t *scratch)
{
    int failures = cask_testclient_failures ();
    //  All but the crash, which errs and would fail the gather
    if (cask_gather (client, wave->futures, wave->count - 1, 10000)) {
        cask_testclient_fail ("wave %d, gather: %s", wave->number, cask_client_error (client));
        return;
    }
    for (size_t i = 0; i < wave->naps && cask_testclient_failures () == failures; i++) {
        int64_t value, expected = wave->first_x + (int64_t) (i / length);
        if (cask_future_int64 (wave->futures [i], 0, &value))
            cask_testclient_fail ("wave %d, nap %zu: %s: %s", wave->number, i,
                                  cask_status_name (cask_future_status (wave->futures [i])),
                                  cask_future_error (wave->futures [i]));
        else
        if (value != expected)
            cask_testclient_fail ("wave %d, nap %zu gave %lld, not %lld", wave->number, i,
                                  (long long) value, (long long) expected);
    }
    for (size_t pair = 0; pair < wave->pairs && cask_testclient_failures () == failures; pair++) {
        uint64_t seed = (uint64_t) (wave->first_x + (int64_t) (2 * pair));
        uint64_t hash = cask_testlib_pair_digest (scratch, S_BYTES_SIZE, seed);
        cask_future_t *digest = wave->futures [wave->naps + pair];
        int64_t value;
        if (cask_future_int64 (digest, 0, &value))
            cask_testclient_fail ("wave %d, digest %zu: %s: %s", wave->number, pair,
                                  cask_status_name (cask_future_status (digest)),
                                  cask_future_error (digest));
        else
        if ((uint64_t) value != hash)
            cask_testclient_fail ("wave %d, digest %zu is wrong", wave->number, pair);
    }
    cask_future_t *bad = wave->futures [wave->count - 1];
    if (cask_future_status (bad) != CASK_ERROR
    ||  !strstr (cask_future_error (bad), "unknown way to crash"))
        cask_testclient_fail ("wave %d, crash: %s: %s", wave->number,
                              cask_status_name (cask_future_status (bad)), cask_future_error (bad));
    if (cask_testclient_failures () == failures)
        printf ("wave %d ok at %lld ms\n", wave->number, (long long) cask_testclient_elapsed_ms ());
}

int
main (int argc, char *argv [])
{
    if (argc != 7 && argc != 9) {
        fprintf (stderr, "usage: dashboard_client ADDRESS LIBRARY CHAINS LENGTH NAP_MS SECONDS [W1 W2]\n");
        return 2;
    }
    if (argc == 9) {
        s_pin [0] = argv [7];
        s_pin [1] = argv [8];
    }
    cask_testclient_start ("dashboard_client");
    const char *address = argv [1], *library = argv [2];
    size_t chains = (size_t) cask_testclient_arg (argv [3], "CHAINS", 1);
    size_t length = (size_t) cask_testclient_arg (argv [4], "LENGTH", 1);
    int64_t nap_ms = cask_testclient_arg (argv [5], "NAP_MS", 0);
    int64_t limit_ms = cask_testclient_arg (argv [6], "SECONDS", 1) * 1000;
    setvbuf (stdout, NULL, _IOLBF, 0);

    cask_client_t *client = cask_client_new (address, 10000);
    if (!client) {
        fprintf (stderr, "dashboard_client: %s\n", cask_client_last_error ());
        return 1;
    }
    if (cask_client_register (client, library, 10000)) {
        fprintf (stderr, "dashboard_client: register %s: %s\n", library, cask_client_error (client));
        cask_client_destroy (&client);
        return 1;
    }
    //  After the client is up, so that these handlers are the ones left
    struct sigaction action = { .sa_handler = s_on_signal };
    sigemptyset (&action.sa_mask);
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);

    uint8_t *scratch = malloc (S_BYTES_SIZE);
    if (!scratch) {
        fprintf (stderr, "dashboard_client: out of memory\n");
        return 1;
    }
    s_wave_t waves [2] = { { 0 } };     //  the current one, the one before
    int number = 0, done = -1;
    if (s_wave_submit (client, &waves [0], number, chains, length, nap_ms) == 0)
        printf ("wave 0: %zu tasks submitted at %lld ms\n", waves [0].count,
                (long long) cask_testclient_elapsed_ms ());
    while (!s_stop && cask_testclient_failures () == 0
       &&  cask_testclient_elapsed_ms () < limit_ms) {
        s_wave_t *wave = &waves [0];
        int now_done = cask_wait (client, wave->futures, wave->count, CASK_WAIT_ALL, 100);
        if (now_done < 0) {
            if (!s_stop)
                cask_testclient_fail ("wait: %s", cask_client_error (client));
            break;
        }
        if (now_done != done)
            printf ("progress %d/%zu %lld\n", now_done, wave->count,
                    (long long) cask_testclient_elapsed_ms ());
        done = now_done;
        if (now_done == (int) wave->count) {
            s_wave_check (client, wave, length, scratch);
            s_wave_destroy (&waves [1]);
            waves [1] = waves [0];
            done = -1;
            if (s_wave_submit (client, &waves [0], ++number, chains, length, nap_ms) == 0)
                printf ("wave %d: %zu tasks submitted at %lld ms\n", number, waves [0].count,
                        (long long) cask_testclient_elapsed_ms ());
        }
    }
    printf ("stopped at %lld ms after %d waves\n", (long long) cask_testclient_elapsed_ms (),
            number);
    s_wave_destroy (&waves [0]);
    s_wave_destroy (&waves [1]);
    cask_client_destroy (&client);
    free (scratch);
    return cask_testclient_failures () ? 1 : 0;
}
