/*  cask_library.c - the task libraries loaded by a worker.

    Everything about a library comes off the wire, so each step checks
    before it trusts: the hash must be a hex SHA-1 (it becomes a file name)
    and match the bytes, the bytes must be an ELF object, the object must
    carry the ABI version this worker speaks and a table that exports every
    function the broker listed. Libraries are opened RTLD_LOCAL so that two
    libraries (or two versions of one) can export the same names; they
    resolve the cask_* accessors from the libcask the worker itself links.

    Function ids are small integers the broker hands out, so they index an
    array directly; an id past S_MAX_FUNCTION_ID is refused rather than
    letting the wire size an allocation. Function names are interned and
    kept until the end, so a task that borrowed its function's name stays
    valid when the broker maps that id again.
*/
#include "cask_library.h"

#include <czmq.h>
#include <dlfcn.h>

#define S_HASH_SIZE 40                  //  hex SHA-1
#define S_MAX_FUNCTION_ID (1u << 20)
#define S_MAX_EXPORTS 65536             //  a table without its end stops here
#define S_FAILED "library %s could not be loaded on this worker: %s"

typedef struct _s_library_t s_library_t;
struct _s_library_t {
    char *name;
    char hash [S_HASH_SIZE + 1];        //  lower case
    void *handle;                       //  NULL when it failed
    const cask_export_t *exports;
    char error [640];                   //  why it failed: S_FAILED
    s_library_t *next;
};

typedef struct {
    cask_fn_t *fn;                      //  NULL when its library failed
    const char *name;                   //  interned in names
    s_library_t *library;               //  NULL: id not assigned
} s_function_t;

struct _cask_libraries_t {
    char *dir;
    s_library_t *libraries;
    zhashx_t *names;                    //  function name -> the same, owned
    s_function_t *functions;            //  indexed by id
    size_t nfunctions;                  //  ids below this have a slot
};

static void
s_name_destructor (void **item)
{
    free (*item);
    *item = NULL;
}

cask_libraries_t *
cask_libraries_new (const char *dir)
{
    cask_libraries_t *self = (cask_libraries_t *) calloc (1, sizeof (cask_libraries_t));
    if (self) {
        self->dir = strdup (dir);
        self->names = zhashx_new ();
        if (!self->dir || !self->names) {
            cask_libraries_destroy (&self);
            return NULL;
        }
        zhashx_set_destructor (self->names, s_name_destructor);
    }
    return self;
}

static void
s_library_destroy (s_library_t **self_p)
{
    s_library_t *self = *self_p;
    if (self->handle)
        dlclose (self->handle);
    free (self->name);
    free (self);
    *self_p = NULL;
}

void
cask_libraries_destroy (cask_libraries_t **self_p)
{
    if (self_p && *self_p) {
        cask_libraries_t *self = *self_p;
        free (self->functions);
        while (self->libraries) {
            s_library_t *next = self->libraries->next;
            s_library_destroy (&self->libraries);
            self->libraries = next;
        }
        zhashx_destroy (&self->names);
        free (self->dir);
        free (self);
        *self_p = NULL;
    }
}

//  ---------------------------------------------------------------------
//  Checks of what came off the wire. Each returns NULL when all is well,
//  else the reason (in reason, or a static string).

static const char *
s_check_hash (cask_str_t hash, char *lower)
{
    if (hash.len != S_HASH_SIZE)
        return "its hash is not a hex SHA-1 digest";
    for (size_t index = 0; index < S_HASH_SIZE; index++) {
        int c = tolower ((unsigned char) hash.ptr [index]);
        if (!isxdigit (c))
            return "its hash is not a hex SHA-1 digest";
        lower [index] = (char) c;
    }
    lower [S_HASH_SIZE] = 0;
    return NULL;
}

static const char *
s_check_bytes (const char *hash, const void *so, size_t size)
{
    if (size < 4 || memcmp (so, "\x7f" "ELF", 4) != 0)
        return "it is not a shared object (no ELF header)";
    zdigest_t *digest = zdigest_new ();
    if (!digest)
        return "out of memory";
    zdigest_update (digest, (const byte *) so, size);
    bool match = strcasecmp (zdigest_string (digest), hash) == 0;
    zdigest_destroy (&digest);
    return match ? NULL : "its bytes do not match its hash";
}

//  Writes the shared object to DIR/HASH.so, through a temporary name so a
//  half-written file is never loaded.
static const char *
s_write_object (cask_libraries_t *self, s_library_t *library, const void *so,
                size_t size, char *path, size_t path_size, char *reason,
                size_t reason_size)
{
    char temp [PATH_MAX];
    snprintf (path, path_size, "%s/%s.so", self->dir, library->hash);
    snprintf (temp, sizeof temp, "%s/%s.so.part", self->dir, library->hash);
    FILE *file = fopen (temp, "wb");
    bool written = file && fwrite (so, 1, size, file) == size;
    if (file && fclose (file))
        written = false;
    if (!written || rename (temp, path)) {
        snprintf (reason, reason_size, "cannot write it into the worker's directory: %s",
                  strerror (errno));
        remove (temp);
        return reason;
    }
    return NULL;
}

static const cask_export_t *
s_find_export (const cask_export_t *exports, cask_str_t name)
{
    for (size_t index = 0; index < S_MAX_EXPORTS && exports [index].name; index++)
        if (cask_str_eq (name, exports [index].name) && exports [index].fn)
            return &exports [index];
    return NULL;
}

//  Every function the broker listed must be in the table.
static const char *
s_check_listed (const cask_export_t *exports, const cask_func_t *funcs,
                uint32_t nfuncs, char *reason, size_t reason_size)
{
    for (uint32_t index = 0; index < nfuncs; index++)
        if (!s_find_export (exports, funcs [index].name)) {
            char name [CASK_MAX_KEY + 1];
            snprintf (reason, reason_size, "function %s is not in its cask_exports table",
                      cask_str_copy (funcs [index].name, name, sizeof name));
            return reason;
        }
    return NULL;
}

//  Opens the written object and checks its ABI and its table.
static const char *
s_open_object (s_library_t *library, const char *path, const cask_func_t *funcs,
               uint32_t nfuncs, char *reason, size_t reason_size)
{
    library->handle = dlopen (path, RTLD_NOW | RTLD_LOCAL);
    if (!library->handle) {
        snprintf (reason, reason_size, "%s", dlerror ());
        return reason;
    }
    const int *abi = (const int *) dlsym (library->handle, "cask_abi_version");
    if (!abi)
        return "it has no cask_abi_version (not made with CASK_MSG_LIBRARY)";
    if (*abi != CASK_ABI_VERSION) {
        snprintf (reason, reason_size, "it is built for task ABI %d, this worker runs %d",
                  *abi, CASK_ABI_VERSION);
        return reason;
    }
    library->exports = (const cask_export_t *) dlsym (library->handle, "cask_exports");
    if (!library->exports)
        return "it has no cask_exports table (not made with CASK_MSG_LIBRARY)";
    return s_check_listed (library->exports, funcs, nfuncs, reason, reason_size);
}

static const char *
s_check_ids (const cask_func_t *funcs, uint32_t nfuncs, char *reason,
             size_t reason_size)
{
    for (uint32_t index = 0; index < nfuncs; index++)
        if (funcs [index].id >= S_MAX_FUNCTION_ID) {
            snprintf (reason, reason_size, "function id %u is out of range",
                      funcs [index].id);
            return reason;
        }
    return NULL;
}

//  ---------------------------------------------------------------------
//  Function ids

static int
s_grow_functions (cask_libraries_t *self, uint32_t id)
{
    if (id < self->nfunctions)
        return 0;
    size_t size = self->nfunctions ? self->nfunctions : 16;
    while (size <= id)
        size *= 2;
    s_function_t *functions = (s_function_t *) realloc (self->functions,
                                                        size * sizeof (s_function_t));
    if (!functions)
        return -1;
    memset (functions + self->nfunctions, 0,
            (size - self->nfunctions) * sizeof (s_function_t));
    self->functions = functions;
    self->nfunctions = size;
    return 0;
}

static const char *
s_intern (cask_libraries_t *self, cask_str_t view)
{
    char name [CASK_MAX_KEY + 1];
    cask_str_copy (view, name, sizeof name);
    char *interned = (char *) zhashx_lookup (self->names, name);
    if (!interned) {
        interned = strdup (name);
        if (!interned)
            return NULL;
        if (zhashx_insert (self->names, name, interned)) {
            free (interned);
            return NULL;
        }
    }
    return interned;
}

//  Points the broker's ids at the library's functions (or at the library
//  alone, when it failed).
static int
s_map_functions (cask_libraries_t *self, s_library_t *library,
                 const cask_func_t *funcs, uint32_t nfuncs)
{
    for (uint32_t index = 0; index < nfuncs; index++) {
        if (s_grow_functions (self, funcs [index].id))
            return -1;
        s_function_t *function = &self->functions [funcs [index].id];
        function->name = s_intern (self, funcs [index].name);
        if (!function->name)
            return -1;
        const cask_export_t *export = library->handle
            ? s_find_export (library->exports, funcs [index].name) : NULL;
        function->fn = export ? export->fn : NULL;
        function->library = library;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Loading

static s_library_t *
s_library_find (cask_libraries_t *self, const char *hash)
{
    s_library_t *library = self->libraries;
    while (library && strcmp (library->hash, hash))
        library = library->next;
    return library;
}

static s_library_t *
s_library_new (cask_libraries_t *self, const cask_library_t *rec, const char *hash)
{
    s_library_t *library = (s_library_t *) calloc (1, sizeof (s_library_t));
    if (!library)
        return NULL;
    library->name = (char *) malloc (rec->name.len + 1);
    if (!library->name) {
        free (library);
        return NULL;
    }
    cask_str_copy (rec->name, library->name, rec->name.len + 1);
    strcpy (library->hash, hash);
    library->next = self->libraries;
    self->libraries = library;
    return library;
}

//  Remembers why library failed and unloads it.
static void
s_library_fail (s_library_t *library, const char *reason)
{
    if (library->handle) {
        dlclose (library->handle);
        library->handle = NULL;
        library->exports = NULL;
    }
    snprintf (library->error, sizeof library->error, S_FAILED, library->name, reason);
}

//  Loads a library seen for the first time; returns the reason it failed,
//  or NULL.
static const char *
s_library_load (cask_libraries_t *self, s_library_t *library,
                const cask_func_t *funcs, uint32_t nfuncs, const void *so,
                size_t size, char *reason, size_t reason_size)
{
    char path [PATH_MAX];
    const char *failed = s_check_bytes (library->hash, so, size);
    if (!failed)
        failed = s_write_object (self, library, so, size, path, sizeof path,
                                 reason, reason_size);
    if (!failed)
        failed = s_open_object (library, path, funcs, nfuncs, reason, reason_size);
    return failed;
}

int
cask_libraries_load (cask_libraries_t *self, const cask_library_t *rec,
                     const cask_func_t *funcs, const void *so, size_t size,
                     char *error, size_t error_size)
{
    char hash [S_HASH_SIZE + 1];
    char reason [512];
    char name [CASK_MAX_KEY + 1];
    const char *failed = s_check_hash (rec->hash, hash);
    if (!failed)
        failed = s_check_ids (funcs, rec->nfuncs, reason, sizeof reason);
    if (failed) {
        snprintf (error, error_size, S_FAILED,
                  cask_str_copy (rec->name, name, sizeof name), failed);
        return -1;
    }
    s_library_t *library = s_library_find (self, hash);
    if (!library) {
        library = s_library_new (self, rec, hash);
        if (!library) {
            snprintf (error, error_size, "out of memory");
            return -1;
        }
        failed = s_library_load (self, library, funcs, rec->nfuncs, so, size,
                                 reason, sizeof reason);
        if (failed)
            s_library_fail (library, failed);
    }
    else
    if (library->handle) {
        //  Loaded before: this list of functions must be in its table too.
        failed = s_check_listed (library->exports, funcs, rec->nfuncs,
                                 reason, sizeof reason);
        if (failed) {
            snprintf (error, error_size, S_FAILED, library->name, failed);
            return -1;
        }
    }
    if (s_map_functions (self, library, funcs, rec->nfuncs)) {
        snprintf (error, error_size, "out of memory");
        return -1;
    }
    if (!library->handle) {
        snprintf (error, error_size, "%s", library->error);
        return -1;
    }
    return 0;
}

cask_fn_t *
cask_libraries_function (cask_libraries_t *self, uint32_t id, const char **name,
                         const char **error)
{
    *name = NULL;
    *error = NULL;
    if (id >= self->nfunctions || !self->functions [id].library)
        return NULL;
    s_function_t *function = &self->functions [id];
    *name = function->name;
    if (!function->fn)
        *error = function->library->error;
    return function->fn;
}

static size_t
s_count (cask_libraries_t *self, bool loaded)
{
    size_t count = 0;
    for (s_library_t *library = self->libraries; library; library = library->next)
        if ((library->handle != NULL) == loaded)
            count++;
    return count;
}

size_t
cask_libraries_loaded (cask_libraries_t *self)
{
    return s_count (self, true);
}

size_t
cask_libraries_failed (cask_libraries_t *self)
{
    return s_count (self, false);
}
