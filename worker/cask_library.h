/*  cask_library.h - the task libraries loaded by a worker.

    The broker sends each library (LIBRARY: name, SHA-1 hash, the functions
    with the ids it gave them, and the shared object). The worker keeps the
    shared object in its directory under the hash, loads it with dlopen and
    maps the broker's function ids to the functions of the library's
    cask_exports table. A library that cannot be loaded is remembered too,
    so a task of one of its functions fails with the loader's reason.

    The class is cask_libraries_t: cask_library_t is the LIBRARY record of
    the codec.
*/
#ifndef CASK_LIBRARY_H_INCLUDED
#define CASK_LIBRARY_H_INCLUDED

#include "cask_proto.h"
#include "cask/cask_task.h"

typedef struct _cask_libraries_t cask_libraries_t;

//  Creates an empty set that writes shared objects into dir (which must
//  exist), or NULL when out of memory.
cask_libraries_t *cask_libraries_new (const char *dir);
//  Unloads every library (values their functions made must be gone by
//  then) and nulls *self_p. Safe twice.
void cask_libraries_destroy (cask_libraries_t **self_p);

//  Loads the library rec describes, whose functions (ids assigned) are
//  funcs [0 .. rec->nfuncs) and whose shared object is the size bytes at
//  so. Loading a library again (same hash) only maps the ids again.
//  Returns 0, or -1 with a message for LIBFAIL in error (at most
//  error_size bytes): "library NAME could not be loaded on this worker:
//  REASON"; the library's functions then resolve to that message.
int cask_libraries_load (cask_libraries_t *self, const cask_library_t *rec,
                         const cask_func_t *funcs, const void *so, size_t size,
                         char *error, size_t error_size);

//  Resolves function id. Returns the function and sets *name; or NULL
//  with *name and *error set when its library failed to load; or NULL
//  with both NULL when no library has that id. Strings live as long as
//  the set.
cask_fn_t *cask_libraries_function (cask_libraries_t *self, uint32_t id,
                                    const char **name, const char **error);

//  Number of libraries loaded, and that failed to load.
size_t cask_libraries_loaded (cask_libraries_t *self);
size_t cask_libraries_failed (cask_libraries_t *self);

#endif
