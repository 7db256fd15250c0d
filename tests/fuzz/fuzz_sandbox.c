/*  fuzz_sandbox.c - keeps the connections of a fuzz target on endpoints
    it made itself.

    Fuzzed TASK and COPY records name the workers to fetch from, so a
    worker under fuzzing would connect wherever the fuzzer writes: another
    host, or a service of this machine. This file defines connect() and
    getaddrinfo() in the executable, which ZeroMQ's calls resolve to before
    the C library's: connect goes through only to the abstract unix socket
    names allowed here (a refusal looks like a closed port), and names are
    never looked up (numeric addresses only), so no packet leaves the
    process's own sockets.
*/
#define _GNU_SOURCE
#include "fuzz_sandbox.h"

#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define S_MAX_NAMES 4

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static char s_names [S_MAX_NAMES][sizeof ((struct sockaddr_un *) 0)->sun_path];
static size_t s_nnames;

void
fuzz_sandbox_allow (const char *endpoint)
{
    const char *prefix = "ipc://@";
    if (strncmp (endpoint, prefix, strlen (prefix)) != 0
    ||  strlen (endpoint + strlen (prefix)) >= sizeof s_names [0])
        return;
    pthread_mutex_lock (&s_lock);
    if (s_nnames < S_MAX_NAMES)
        strcpy (s_names [s_nnames++], endpoint + strlen (prefix));
    pthread_mutex_unlock (&s_lock);
}

//  True for an abstract unix socket address whose name was allowed.
static bool
s_allowed (const struct sockaddr *address, socklen_t length)
{
    const struct sockaddr_un *unix_address = (const struct sockaddr_un *) address;
    size_t offset = offsetof (struct sockaddr_un, sun_path) + 1;
    if (length <= offset || address->sa_family != AF_UNIX || unix_address->sun_path [0] != 0)
        return false;
    size_t size = length - offset;
    bool allowed = false;
    pthread_mutex_lock (&s_lock);
    for (size_t index = 0; index < s_nnames && !allowed; index++)
        allowed = strlen (s_names [index]) == size
               && memcmp (s_names [index], unix_address->sun_path + 1, size) == 0;
    pthread_mutex_unlock (&s_lock);
    return allowed;
}

int
connect (int fd, const struct sockaddr *address, socklen_t length)
{
    static int (*s_real) (int, const struct sockaddr *, socklen_t);
    if (!address || !s_allowed (address, length)) {
        errno = ECONNREFUSED;
        return -1;
    }
    if (!s_real)
        *(void **) &s_real = dlsym (RTLD_NEXT, "connect");
    if (!s_real) {
        errno = ENOSYS;
        return -1;
    }
    return s_real (fd, address, length);
}

int
getaddrinfo (const char *node, const char *service, const struct addrinfo *hints,
             struct addrinfo **result)
{
    static int (*s_real) (const char *, const char *, const struct addrinfo *,
                          struct addrinfo **);
    if (!s_real)
        *(void **) &s_real = dlsym (RTLD_NEXT, "getaddrinfo");
    if (!s_real)
        return EAI_FAIL;
    struct addrinfo numeric = { 0 };
    if (hints)
        numeric = *hints;
    numeric.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    return s_real (node, service, &numeric, result);
}

bool
fuzz_sandbox_active (void)
{
    return dlsym (RTLD_DEFAULT, "connect") == (void *) connect
        && dlsym (RTLD_DEFAULT, "getaddrinfo") == (void *) getaddrinfo;
}
