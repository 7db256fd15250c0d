/*  tutorial_primes.h - the tutorial's naive prime counting, in C.

    The same algorithm as the notebook's is_prime, slow on purpose: it
    makes real CPU work for the cluster. The task library runs it on the
    workers and simple_futures runs it locally to time the difference.
*/
#ifndef TUTORIAL_PRIMES_H_INCLUDED
#define TUTORIAL_PRIMES_H_INCLUDED

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

static inline bool
tutorial_is_prime (int64_t n)
{
    if (n < 2)
        return false;
    if (n == 2)
        return true;
    int64_t limit = (int64_t) floor (sqrt ((double) n));
    for (int64_t i = 0; i < limit + 1; i++)
        if (i > 1 && n % i == 0)
            return false;
    return true;
}

//  Number of primes less than m
static inline int64_t
tutorial_count_primes_less_than (int64_t m)
{
    int64_t count = 0;
    for (int64_t i = 0; i < m; i++)
        count += tutorial_is_prime (i);
    return count;
}

#endif
