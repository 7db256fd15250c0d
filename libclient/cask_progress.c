/*  cask_progress.c - a progress bar for a set of futures, like Dask's
    progress(): one line on stderr, redrawn in place while the futures run,
    when stderr is a terminal; nothing at all when it is not (a log file or
    a pipe must not fill with redraws).

        [##########################--------------] 65% 650/1000 done, 3 erred, 1.2 s
*/
#include "cask/cask_client.h"

#include <czmq.h>
#include <stdio.h>
#include <unistd.h>

#define S_WIDTH 40                      //  characters of the bar
#define S_REDRAW_MS 100

//  Counts the futures done (finished, erred or cancelled) and the erred.
static size_t
s_count (cask_future_t **futures, size_t n, size_t *erred)
{
    size_t done = 0;
    *erred = 0;
    for (size_t index = 0; index < n; index++) {
        cask_status_t status = cask_future_status (futures [index]);
        done += status != CASK_PENDING;
        *erred += status == CASK_ERROR || status == CASK_CANCELLED;
    }
    return done;
}

static void
s_draw (size_t done, size_t n, size_t erred, int64_t elapsed_ms)
{
    size_t filled = n ? done * S_WIDTH / n : S_WIDTH;
    char bar [S_WIDTH + 1];
    for (size_t index = 0; index < S_WIDTH; index++)
        bar [index] = index < filled ? '#' : '-';
    bar [S_WIDTH] = 0;
    fprintf (stderr, "\r[%s] %3zu%% %zu/%zu done", bar, n ? done * 100 / n : 100, done, n);
    if (erred)
        fprintf (stderr, ", %zu erred", erred);
    fprintf (stderr, ", %.1f s\033[K", elapsed_ms / 1000.0);
    fflush (stderr);
}

int
cask_progress (cask_client_t *self, cask_future_t **futures, size_t n, int timeout_ms)
{
    bool shown = isatty (STDERR_FILENO);
    int64_t start = zclock_mono ();
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : start + timeout_ms;
    size_t done = 0, erred = 0;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        int wait = left <= 0 ? 0 : left < S_REDRAW_MS ? (int) left : S_REDRAW_MS;
        if (cask_wait (self, futures, n, CASK_WAIT_ALL, wait) < 0)
            return -1;
        done = s_count (futures, n, &erred);
        if (shown)
            s_draw (done, n, erred, zclock_mono () - start);
        if (done == n || zclock_mono () >= deadline)
            break;
    }
    if (shown)
        fputc ('\n', stderr);
    return (int) done;
}
