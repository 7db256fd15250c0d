/*  fuzz_sandbox.h - limits where a fuzz target's process may connect
    (fuzz_sandbox.c): only to the abstract unix sockets ("ipc://@NAME")
    allowed here; everything else is refused as a closed port would be,
    and host names are never resolved.
*/
#ifndef FUZZ_SANDBOX_H_INCLUDED
#define FUZZ_SANDBOX_H_INCLUDED

#include <stdbool.h>

//  Lets connections reach endpoint ("ipc://@NAME"; others are ignored).
//  At most four; thread-safe.
void fuzz_sandbox_allow (const char *endpoint);
//  True when this process's connect and getaddrinfo are the sandbox's
//  (a target checks before it lets fuzzed endpoints near ZeroMQ).
bool fuzz_sandbox_active (void);

#endif
