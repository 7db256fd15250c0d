/*  netcut_client.c - the client of tests/test_netcut.sh: a graph that runs
    long enough for a worker's link to be cut while it is half done.

    Usage: netcut_client ADDRESS LIBRARY NAPS NAP_MS PAIRS TIMEOUT_MS

    LIBRARY is tests/libcask_testlib.so. Submits
      - nap (NAP_MS, i) for i in 0..NAPS: each must come back as i;
      - make_bytes (64 KiB, j, NAP_MS) for j in 0..PAIRS, and
        digest (bytes j, bytes j+1) for j < PAIRS: each digest must be the
        FNV-1a of both patterns (the second input is often on the other
        worker, so results move between workers while the link is cut);
      - crash ("netcut"): must err with "unknown way to crash".
    The digests have priority 1, and are submitted in rounds with a share
    of the naps each, so they run all along: some while the link is cut.
    While they run it prints "progress DONE/TOTAL MS" on stdout each time the
    number of done futures changes (the test cuts the link when enough are
    done), then gathers the results and checks every one. Prints
    "sum S", "digests ok", "error ok" and "finished in MS ms".
    Exits 0 when every future ended with the right value or the right error
    within TIMEOUT_MS of the start, 1 otherwise.
*/
#include <cask/cask.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cask_testclient.h"
#include "cask_testlib.h"

#define S_BYTES_SIZE (64 * 1024)

int
main (int argc, char *argv [])
{
    if (argc != 7) {
        fprintf (stderr, "usage: netcut_client ADDRESS LIBRARY NAPS NAP_MS PAIRS TIMEOUT_MS\n");
        return 2;
    }
    cask_testclient_start ("netcut_client");
    const char *address = argv [1], *library = argv [2];
    size_t naps = (size_t) cask_testclient_arg (argv [3], "NAPS", 0);
    int64_t nap_ms = cask_testclient_arg (argv [4], "NAP_MS", 0);
    size_t pairs = (size_t) cask_testclient_arg (argv [5], "PAIRS", 0);
    int64_t timeout_ms = cask_testclient_arg (argv [6], "TIMEOUT_MS", 0);
    setvbuf (stdout, NULL, _IOLBF, 0);

    cask_client_t *client = cask_client_new (address, 10000);
    if (!client) {
        fprintf (stderr, "netcut_client: %s\n", cask_client_last_error ());
        return 1;
    }
    if (cask_client_register (client, library, 10000)) {
        fprintf (stderr, "netcut_client: register %s: %s\n", library, cask_client_error (client));
        cask_client_destroy (&client);
        return 1;
    }
    //  futures: naps, then digests, then the bytes they digest, then the crash
    size_t total = naps + pairs + (pairs ? pairs + 1 : 0) + 1;
    cask_future_t **futures = calloc (total, sizeof *futures);
    uint8_t *scratch = malloc (S_BYTES_SIZE);
    if (!futures || !scratch) {
        fprintf (stderr, "netcut_client: out of memory\n");
        return 1;
    }
    cask_future_t **nap_futures = futures;
    cask_future_t **digests = futures + naps;
    cask_future_t **bytes = digests + pairs;
    cask_future_t **bad = futures + total - 1;
    //  In rounds, so that digests run all along (before the naps queued
    //  ahead of them, as they have a higher priority): a bytes, the digest
    //  of the previous pair, a share of the naps
    cask_submit_opts_t first = CASK_SUBMIT_DEFAULT;
    first.priority = 1;
    size_t nap_at = 0, share = naps / (pairs + 1);
    for (size_t j = 0; j <= pairs && cask_testclient_failures () == 0; j++) {
        if (pairs
        &&  !(bytes [j] = cask_submit (client, "make_bytes", cask_int64 (S_BYTES_SIZE),
                                       cask_int64 ((int64_t) j), cask_int64 (nap_ms), NULL)))
            cask_testclient_fail ("submit make_bytes (%d, %zu): %s", S_BYTES_SIZE, j,
                                  cask_client_error (client));
        if (j && cask_testclient_failures () == 0) {
            cask_value_t *args [2] = { cask_future_arg (bytes [j - 1]),
                                       cask_future_arg (bytes [j]) };
            if (!(digests [j - 1] = cask_submit_opts (client, "digest", &first, args, 2)))
                cask_testclient_fail ("submit digest %zu: %s", j - 1, cask_client_error (client));
        }
        for (size_t end = j == pairs ? naps : nap_at + share; nap_at < end; nap_at++)
            if (!(nap_futures [nap_at] = cask_submit (client, "nap", cask_int64 (nap_ms),
                                                      cask_int64 ((int64_t) nap_at), NULL)))
                cask_testclient_fail ("submit nap (%lld, %zu): %s", (long long) nap_ms, nap_at,
                                      cask_client_error (client));
    }
    if (!(*bad = cask_submit (client, "crash", cask_string ("netcut"), NULL)))
        cask_testclient_fail ("submit crash: %s", cask_client_error (client));
    printf ("submitted %zu tasks at %lld ms\n", total, (long long) cask_testclient_elapsed_ms ());

    //  Progress until everything is done once (futures lost with a worker
    //  may go back to pending: cask_gather waits for them again)
    int done = -1;
    while (cask_testclient_failures () == 0 && done != (int) total
       &&  cask_testclient_elapsed_ms () < timeout_ms) {
        int now_done = cask_wait (client, futures, total, CASK_WAIT_ALL, 100);
        if (now_done < 0) {
            cask_testclient_fail ("wait: %s", cask_client_error (client));
            break;
        }
        if (now_done != done)
            printf ("progress %d/%zu %lld\n", now_done, total,
                    (long long) cask_testclient_elapsed_ms ());
        done = now_done;
    }
    //  Every result, fetched from wherever it is now (the crash is left
    //  out: it errs, and would make the gather fail)
    int64_t left = timeout_ms - cask_testclient_elapsed_ms ();
    if (cask_testclient_failures () == 0
    &&  cask_gather (client, futures, total - 1, left > 0 ? (int) left : 0))
        cask_testclient_fail ("gather: %s", cask_client_error (client));
    printf ("gathered at %lld ms\n", (long long) cask_testclient_elapsed_ms ());

    int64_t sum = 0;
    for (size_t i = 0; i < naps; i++) {
        int64_t value;
        if (cask_future_int64 (nap_futures [i], 0, &value))
            cask_testclient_fail ("nap %zu: %s: %s", i,
                                  cask_status_name (cask_future_status (nap_futures [i])),
                                  cask_future_error (nap_futures [i]));
        else
        if (value != (int64_t) i)
            cask_testclient_fail ("nap %zu gave %lld", i, (long long) value);
        else
            sum += value;
    }
    int64_t expected_sum = (int64_t) naps * ((int64_t) naps - 1) / 2;
    printf ("sum %lld (expected %lld)\n", (long long) sum, (long long) expected_sum);
    if (sum != expected_sum)
        cask_testclient_fail ("the sum is %lld, not %lld", (long long) sum,
                              (long long) expected_sum);

    size_t digests_ok = 0;
    for (size_t j = 0; j < pairs; j++) {
        int64_t value;
        if (cask_future_int64 (digests [j], 0, &value))
            cask_testclient_fail ("digest %zu: %s: %s", j,
                                  cask_status_name (cask_future_status (digests [j])),
                                  cask_future_error (digests [j]));
        else
        if ((uint64_t) value != cask_testlib_pair_digest (scratch, S_BYTES_SIZE, j))
            cask_testclient_fail ("digest %zu is %016llx, not %016llx", j,
                                  (unsigned long long) value, (unsigned long long)
                                  cask_testlib_pair_digest (scratch, S_BYTES_SIZE, j));
        else
            digests_ok++;
    }
    if (pairs && digests_ok == pairs)
        printf ("digests ok (%zu)\n", pairs);

    //  The crash ends as an error that says why, cut link or not
    if (cask_future_result (*bad, 0))
        cask_testclient_fail ("crash (\"netcut\") gave a result");
    else
    if (cask_future_status (*bad) != CASK_ERROR
    ||  !strstr (cask_future_error (*bad), "unknown way to crash"))
        cask_testclient_fail ("crash (\"netcut\"): %s: %s",
                              cask_status_name (cask_future_status (*bad)),
                              cask_future_error (*bad));
    else
        printf ("error ok\n");

    printf ("finished in %lld ms\n", (long long) cask_testclient_elapsed_ms ());
    cask_futures_destroy (futures, total);
    cask_client_destroy (&client);
    free (futures);
    free (scratch);
    return cask_testclient_failures () ? 1 : 0;
}
