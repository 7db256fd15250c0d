/*  cask_store.c - the worker's results: key -> value, the GET service, and
    spilling to disk.

    Values are reference counted, so serving one shares it with ZeroMQ
    (bytes travel as zero-copy frames) and with running tasks instead of
    copying it; dropping it from the store only drops the store's hold.

    Each result is one entry, its value and its key in one allocation, in
    a cask_keymap that reads the key in place.

    Spilling. A value of S_SPILL_MIN bytes or more also has a spill record:
    its place in a list of such values in memory, most recently used (put,
    looked up, served) first, and its file once it has one. Whenever the
    bytes in memory exceed the target, values leave memory from the old end
    of the list; a lookup reads one back. Smaller values always stay: they
    are usually many, and a file, two syscalls and a record each would cost
    more than the memory they give back. Values are immutable, so a file
    stays valid after its value is read back: spilling that value again
    only drops it from memory. A file goes when its key is removed,
    replaced or cleared.

    Leaving memory drops the store's reference only. A task running with
    the value, or ZeroMQ sending it, holds a reference of its own, so the
    value lives on until they let go (its memory comes back then, and a
    lookup meanwhile reads a second copy). The pointer lookup returns is
    the store's own; it never spills that value in the same call, and the
    worker takes its own reference before calling the store again.

    Files: one per value, named by a sequence number (16 hex digits) in a
    directory of the store's own. All integers little-endian:

        "caskspl1"                  8 bytes
        u64 body size, u32 nframes, u32 0
        u64 size of each payload frame
        body                        the value as cask_value_encode writes it
        payload frames              back to back

    Payload bytes go from the value to the file with writev and come back
    with readv straight into zmq frames that the bytes values then keep: no
    copy in user space either way. Files are a cache of this process, never
    read after it ends, so they are neither synced nor checksummed; a read
    checks the layout against the size written, and the decoded value's
    bytes against the entry's.

    Disk errors: a value that cannot be written stays in memory and
    spilling rests for S_RETRY_MS (a full disk would fail every write until
    something is freed); a value that cannot be read back stays on disk and
    lookup returns NULL. Both are counted and the last error kept. A value
    the codec cannot write (too deep, too many frames) is never tried again.
*/
#define _GNU_SOURCE                 //  IOV_MAX
#include <czmq.h>
#include "cask_store.h"
#include "cask_keymap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

//  DATA replies are split so that no message nears the protocol's limits.
#define S_DATA_BODY_MAX (16u << 20)
#define S_DATA_FRAMES_MAX (CASK_MAX_FRAMES / 2)
#define S_RECORD_BODY_MAX (CASK_MAX_BODY - S_DATA_BODY_MAX - 1024)

#define S_SPILL_MIN 4096            //  payload bytes a value needs to be spilled
#define S_RETRY_MS 1000             //  spilling rests this long after a write failed
#define S_MAGIC "caskspl1"
#define S_HEAD_SIZE 24              //  magic, body size, nframes, 0
#define S_NAME_SIZE 17              //  16 hex digits

//  One DATA message being built for a GET.
typedef struct {
    cask_buf_t body;
    cask_message_t msg;         //  payload frames
    uint32_t count;             //  records in body
} s_reply_t;

typedef struct _s_entry_t s_entry_t;
typedef struct _s_spill_t s_spill_t;

//  What a value large enough to spill has besides its entry.
struct _s_spill_t {
    s_entry_t *entry;
    s_spill_t *newer;           //  in the list while the value is in memory
    s_spill_t *older;
    uint64_t nbytes;            //  payload bytes of the value
    uint64_t file;              //  number of its file, 0: none
    uint64_t file_size;
};

//  A result held.
struct _s_entry_t {
    cask_value_t *value;        //  NULL while on disk only
    s_spill_t *spill;           //  NULL: never spilled
    size_t key_len;
    char key [];
};

struct _cask_store_t {
    cask_keymap_t *entries;     //  by key
    uint64_t bytes;             //  payload bytes of the values held
    uint64_t gets_served;
    uint64_t bytes_served;
    uint64_t gets_missed;
    s_reply_t reply;            //  kept from one GET to the next
    //  Spilling
    int dirfd;                  //  the spill directory, -1: not set up
    char *dir;                  //  its path
    uint64_t target;            //  bytes in memory
    uint64_t files_made;        //  numbers the files
    int64_t retry_at;           //  monotonic ms; 0: not resting
    s_spill_t *newest;          //  values in memory that may spill
    s_spill_t *oldest;
    cask_store_spill_stats_t stats;
    char error [512];           //  empty: none yet
};

static const void *
s_entry_key (const void *item, size_t *size)
{
    const s_entry_t *entry = (const s_entry_t *) item;
    *size = entry->key_len;
    return entry->key;
}

static void
s_record_error (cask_store_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_record_error (cask_store_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
}

static const char *
s_file_name (uint64_t file, char name [S_NAME_SIZE])
{
    snprintf (name, S_NAME_SIZE, "%016" PRIx64, file);
    return name;
}

//  ---------------------------------------------------------------------
//  The list of spillable values in memory, newest first

static void
s_list_push (cask_store_t *self, s_spill_t *spill)
{
    spill->newer = NULL;
    spill->older = self->newest;
    if (self->newest)
        self->newest->newer = spill;
    else
        self->oldest = spill;
    self->newest = spill;
}

static void
s_list_unlink (cask_store_t *self, s_spill_t *spill)
{
    if (spill->newer)
        spill->newer->older = spill->older;
    else
        self->newest = spill->older;
    if (spill->older)
        spill->older->newer = spill->newer;
    else
        self->oldest = spill->newer;
    spill->newer = spill->older = NULL;
}

//  Marks the entry's value, in memory, most recently used.
static void
s_touch (cask_store_t *self, s_entry_t *entry)
{
    if (entry->spill && self->newest != entry->spill) {
        s_list_unlink (self, entry->spill);
        s_list_push (self, entry->spill);
    }
}

//  ---------------------------------------------------------------------
//  Spill files

//  Moves every byte of iov [0 .. count) to (writing) or from fd, in slices
//  of IOV_MAX, resuming after short transfers. Returns 0, or -1 with errno
//  set (0 when a read met the end of the file).
static int
s_transfer (int fd, struct iovec *iov, size_t count, bool writing)
{
    ssize_t done = 0;
    while (true) {
        while (count && (size_t) done >= iov->iov_len) {
            done -= (ssize_t) iov->iov_len;
            iov++;
            count--;
        }
        if (!count)
            return 0;
        iov->iov_base = (uint8_t *) iov->iov_base + done;
        iov->iov_len -= (size_t) done;
        int slice = count < IOV_MAX ? (int) count : IOV_MAX;
        done = writing ? writev (fd, iov, slice) : readv (fd, iov, slice);
        if (done == 0) {
            errno = writing ? ENOSPC : 0;
            return -1;
        }
        if (done < 0 && errno != EINTR)
            return -1;
        if (done < 0)
            done = 0;
    }
}

//  A value as its file holds it.
typedef struct {
    cask_buf_t head;            //  magic, sizes
    cask_buf_t body;
    cask_message_t frames;      //  payload frames, by reference
    uint64_t size;              //  of the whole file
} s_image_t;

static void
s_image_free (s_image_t *self)
{
    cask_buf_free (&self->head);
    cask_buf_free (&self->body);
    cask_message_close (&self->frames);
}

static int
s_image_encode (s_image_t *self, const cask_value_t *value)
{
    cask_buf_init (&self->head);
    cask_buf_init (&self->body);
    cask_message_init (&self->frames);
    if (cask_value_encode (value, &self->body, &self->frames, NULL, NULL))
        return -1;
    cask_put_raw (&self->head, S_MAGIC, 8);
    cask_put_u64 (&self->head, self->body.size);
    cask_put_u32 (&self->head, (uint32_t) self->frames.nframes);
    cask_put_u32 (&self->head, 0);
    self->size = S_HEAD_SIZE + self->body.size;
    for (size_t index = 0; index < self->frames.nframes; index++) {
        size_t size = zmq_msg_size (&self->frames.frames [index]);
        cask_put_u64 (&self->head, size);
        self->size += 8 + size;
    }
    return self->head.failed ? -1 : 0;
}

static int
s_image_write (s_image_t *self, int fd)
{
    size_t count = self->frames.nframes + 2;
    struct iovec *iov = (struct iovec *) malloc (count * sizeof (struct iovec));
    if (!iov) {
        errno = ENOMEM;
        return -1;
    }
    iov [0] = (struct iovec) { self->head.data, self->head.size };
    iov [1] = (struct iovec) { self->body.data, self->body.size };
    for (size_t index = 0; index < self->frames.nframes; index++) {
        zmq_msg_t *frame = &self->frames.frames [index];
        iov [index + 2] = (struct iovec) { zmq_msg_data (frame), zmq_msg_size (frame) };
    }
    int rc = s_transfer (fd, iov, count, true);
    free (iov);
    return rc;
}

//  Writes image to a new file for spill. Returns 0, or -1 with errno set
//  and no file left.
static int
s_file_create (cask_store_t *self, s_spill_t *spill, s_image_t *image)
{
    char name [S_NAME_SIZE];
    uint64_t file = ++self->files_made;
    int fd = openat (self->dirfd, s_file_name (file, name),
                     O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = s_image_write (image, fd);
    int error = errno;
    if (close (fd) && rc == 0) {
        rc = -1;
        error = errno;
    }
    if (rc) {
        unlinkat (self->dirfd, name, 0);
        errno = error;
        return -1;
    }
    spill->file = file;
    spill->file_size = image->size;
    self->stats.bytes_on_disk += image->size;
    self->stats.bytes_written += image->size;
    return 0;
}

static void
s_file_delete (cask_store_t *self, s_spill_t *spill)
{
    if (spill->file) {
        char name [S_NAME_SIZE];
        unlinkat (self->dirfd, s_file_name (spill->file, name), 0);
        self->stats.bytes_on_disk -= spill->file_size;
        spill->file = 0;
    }
}

//  The value stays in memory for good: drops its spill record.
static void
s_spill_forget (cask_store_t *self, s_entry_t *entry)
{
    s_list_unlink (self, entry->spill);
    free (entry->spill);
    entry->spill = NULL;
}

//  Writes the entry's value to a file of its own. Returns 0, or -1 (the
//  error recorded).
static int
s_file_write (cask_store_t *self, s_entry_t *entry)
{
    s_image_t image;
    int rc = s_image_encode (&image, entry->value);
    if (rc) {
        s_record_error (self, "cannot spill %.*s: the codec cannot write it",
                        (int) entry->key_len, entry->key);
        s_spill_forget (self, entry);
    }
    else
    if ((rc = s_file_create (self, entry->spill, &image))) {
        s_record_error (self, "cannot spill %.*s to %s: %s", (int) entry->key_len,
                        entry->key, self->dir, strerror (errno));
        self->retry_at = zclock_mono () + S_RETRY_MS;
    }
    s_image_free (&image);
    if (rc)
        self->stats.spill_errors++;
    return rc;
}

//  Reads the frame sizes of a file after its head, and makes the frames in
//  msg, uninitialised, if the sizes add up to the file's. Returns 0, or -1
//  with why set.
static int
s_frames_read (int fd, uint64_t file_size, uint64_t body_size, uint32_t nframes,
               cask_message_t *msg, const char **why)
{
    uint64_t *sizes = (uint64_t *) malloc ((nframes + 1) * sizeof (uint64_t));
    struct iovec iov = { sizes, nframes * sizeof (uint64_t) };
    if (!sizes || s_transfer (fd, &iov, 1, false)) {
        *why = !sizes ? strerror (ENOMEM) : errno ? strerror (errno) : "file truncated";
        free (sizes);
        return -1;
    }
    uint64_t left = file_size - S_HEAD_SIZE - 8 * (uint64_t) nframes;
    *why = body_size <= left ? NULL : "file not as written";
    left -= *why ? 0 : body_size;
    for (uint32_t index = 0; !*why && index < nframes; index++) {
        cask_rd_t rd;
        cask_rd_init (&rd, &sizes [index], sizeof (uint64_t));
        uint64_t size = cask_get_u64 (&rd);
        zmq_msg_t frame;
        if (size > left)
            *why = "file not as written";
        else
        if (zmq_msg_init_size (&frame, size))
            *why = strerror (ENOMEM);
        else
        if (cask_message_move_frame (msg, &frame) < 0) {
            zmq_msg_close (&frame);
            *why = strerror (ENOMEM);
        }
        else
            left -= size;
    }
    free (sizes);
    if (!*why && left)
        *why = "file not as written";
    return *why ? -1 : 0;
}

//  Reads the body and the frames of a file, checked, and decodes the value.
//  Returns it, or NULL with why set.
static cask_value_t *
s_image_read (int fd, uint64_t file_size, const char **why)
{
    uint8_t head [S_HEAD_SIZE];
    struct iovec iov = { head, sizeof head };
    if (s_transfer (fd, &iov, 1, false)) {
        *why = errno ? strerror (errno) : "file truncated";
        return NULL;
    }
    cask_rd_t rd;
    cask_rd_init (&rd, head, sizeof head);
    cask_str_t magic = cask_get_raw (&rd, 8);
    uint64_t body_size = cask_get_u64 (&rd);
    uint32_t nframes = cask_get_u32 (&rd);
    *why = "file not as written";
    if (memcmp (magic.ptr, S_MAGIC, 8) || body_size > file_size
    ||  nframes > (file_size - S_HEAD_SIZE) / 8)
        return NULL;

    cask_message_t msg;
    cask_message_init (&msg);
    uint8_t *body = (uint8_t *) malloc (body_size + 1);
    struct iovec *iovs = (struct iovec *) malloc ((nframes + 1) * sizeof (struct iovec));
    cask_value_t *value = NULL;
    if (!body || !iovs)
        *why = strerror (ENOMEM);
    else
    if (s_frames_read (fd, file_size, body_size, nframes, &msg, why) == 0) {
        iovs [0] = (struct iovec) { body, body_size };
        for (uint32_t index = 0; index < nframes; index++)
            iovs [index + 1] = (struct iovec) { zmq_msg_data (&msg.frames [index]),
                                                zmq_msg_size (&msg.frames [index]) };
        if (s_transfer (fd, iovs, nframes + 1, false))
            *why = errno ? strerror (errno) : "file truncated";
        else {
            cask_rd_init (&rd, body, body_size);
            value = cask_value_decode (&rd, &msg, 0, nframes, NULL, 0, why);
            if (value && !cask_rd_done (&rd))
                cask_value_destroy (&value);
        }
    }
    free (iovs);
    free (body);
    cask_message_close (&msg);
    return value;
}

//  Reads the entry's value back from its file. Returns it, or NULL (the
//  error recorded).
static cask_value_t *
s_file_read (cask_store_t *self, s_entry_t *entry)
{
    s_spill_t *spill = entry->spill;
    char name [S_NAME_SIZE];
    const char *why = NULL;
    cask_value_t *value = NULL;
    int fd = openat (self->dirfd, s_file_name (spill->file, name), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        why = strerror (errno);
    else {
        value = s_image_read (fd, spill->file_size, &why);
        close (fd);
    }
    if (value && cask_value_nbytes (value) != spill->nbytes) {
        why = "file not as written";
        cask_value_destroy (&value);
    }
    if (value)
        self->stats.bytes_read += spill->file_size;
    else {
        s_record_error (self, "cannot read %.*s back from %s/%s: %s", (int) entry->key_len,
                        entry->key, self->dir, name, why ? why : "file not as written");
        self->stats.unspill_errors++;
    }
    return value;
}

//  ---------------------------------------------------------------------
//  Moving values between memory and disk

//  Drops the entry's value from memory, writing it to a file first unless
//  it has one. Returns 0, or -1 when it stays in memory.
static int
s_spill_one (cask_store_t *self, s_entry_t *entry)
{
    s_spill_t *spill = entry->spill;
    if (!spill->file && s_file_write (self, entry))
        return -1;
    s_list_unlink (self, spill);
    cask_value_destroy (&entry->value);
    self->stats.bytes_in_memory -= spill->nbytes;
    self->stats.values_on_disk++;
    self->stats.spills++;
    return 0;
}

//  True while spilling rests after a write failed.
static bool
s_resting (cask_store_t *self)
{
    if (self->retry_at && zclock_mono () >= self->retry_at)
        self->retry_at = 0;
    return self->retry_at != 0;
}

//  Spills the oldest values, but not keep's, until the bytes in memory are
//  at most target. Returns 0, or -1 when spilling is off, resting, or a
//  write failed (a value the codec refuses is passed over).
static int
s_spill_to (cask_store_t *self, uint64_t target, s_entry_t *keep)
{
    if (self->stats.bytes_in_memory <= target)
        return 0;
    if (self->dirfd < 0 || s_resting (self))
        return -1;
    while (self->stats.bytes_in_memory > target
       &&  self->oldest && self->oldest->entry != keep)
        if (s_spill_one (self, self->oldest->entry) && self->retry_at)
            return -1;
    return 0;
}

//  Reads the entry's value back into memory, as the newest, then spills
//  others as the target asks. Returns 0, or -1 when it cannot be read.
static int
s_unspill (cask_store_t *self, s_entry_t *entry)
{
    entry->value = s_file_read (self, entry);
    if (!entry->value)
        return -1;
    s_list_push (self, entry->spill);
    self->stats.bytes_in_memory += entry->spill->nbytes;
    self->stats.values_on_disk--;
    self->stats.unspills++;
    s_spill_to (self, self->target, entry);
    return 0;
}

//  ---------------------------------------------------------------------
//  Entries

static uint64_t
s_entry_nbytes (s_entry_t *entry)
{
    return entry->spill ? entry->spill->nbytes : cask_value_nbytes (entry->value);
}

//  Gives the entry value (taking it), in memory and newest. A value that
//  could spill but finds no memory for its record just stays in memory.
static void
s_entry_attach (cask_store_t *self, s_entry_t *entry, cask_value_t *value)
{
    uint64_t nbytes = cask_value_nbytes (value);
    entry->value = value;
    entry->spill = nbytes >= S_SPILL_MIN ? (s_spill_t *) calloc (1, sizeof (s_spill_t)) : NULL;
    if (entry->spill) {
        entry->spill->entry = entry;
        entry->spill->nbytes = nbytes;
        s_list_push (self, entry->spill);
    }
    self->bytes += nbytes;
    self->stats.bytes_in_memory += nbytes;
}

//  Drops the entry's value, from memory or disk.
static void
s_entry_detach (cask_store_t *self, s_entry_t *entry)
{
    uint64_t nbytes = s_entry_nbytes (entry);
    self->bytes -= nbytes;
    if (entry->value)
        self->stats.bytes_in_memory -= nbytes;
    else
        self->stats.values_on_disk--;
    if (entry->spill) {
        if (entry->value)
            s_list_unlink (self, entry->spill);
        s_file_delete (self, entry->spill);
        free (entry->spill);
        entry->spill = NULL;
    }
    cask_value_destroy (&entry->value);
}

static void
s_entry_destroy (cask_store_t *self, s_entry_t **entry_p)
{
    s_entry_detach (self, *entry_p);
    free (*entry_p);
    *entry_p = NULL;
}

//  A new entry for key, without a value yet, in the map; NULL when out of
//  memory.
static s_entry_t *
s_entry_new (cask_store_t *self, cask_str_t key, uint64_t hash)
{
    s_entry_t *entry = (s_entry_t *) calloc (1, sizeof (s_entry_t) + key.len);
    if (!entry)
        return NULL;
    entry->key_len = key.len;
    if (key.len)
        memcpy (entry->key, key.ptr, key.len);
    if (cask_keymap_insert_hashed (self->entries, entry, hash)) {
        free (entry);
        return NULL;
    }
    return entry;
}

//  ---------------------------------------------------------------------

cask_store_t *
cask_store_new (void)
{
    cask_store_t *self = (cask_store_t *) calloc (1, sizeof (cask_store_t));
    if (self) {
        self->entries = cask_keymap_new (s_entry_key);
        if (!self->entries) {
            free (self);
            return NULL;
        }
        cask_buf_init (&self->reply.body);
        cask_message_init (&self->reply.msg);
        self->dirfd = -1;
        self->target = UINT64_MAX;
    }
    return self;
}

//  Closes the spill directory and removes it (empty by now).
static void
s_spill_dir_close (cask_store_t *self)
{
    if (self->dirfd >= 0) {
        close (self->dirfd);
        rmdir (self->dir);
        free (self->dir);
        self->dir = NULL;
        self->dirfd = -1;
    }
}

void
cask_store_destroy (cask_store_t **self_p)
{
    if (self_p && *self_p) {
        cask_store_t *self = *self_p;
        cask_store_clear (self);
        s_spill_dir_close (self);
        cask_keymap_destroy (&self->entries);
        cask_message_close (&self->reply.msg);
        cask_buf_free (&self->reply.body);
        free (self);
        *self_p = NULL;
    }
}

int
cask_store_put (cask_store_t *self, cask_str_t key, cask_value_t *value)
{
    if (!value)
        return -1;
    uint64_t hash = cask_keymap_hash (self->entries, key.ptr, key.len);
    s_entry_t *entry = cask_keymap_lookup_hashed (self->entries, key.ptr, key.len, hash);
    if (entry)
        s_entry_detach (self, entry);
    else
    if (!(entry = s_entry_new (self, key, hash))) {
        cask_value_destroy (&value);
        return -1;
    }
    s_entry_attach (self, entry, value);
    s_spill_to (self, self->target, NULL);
    return 0;
}

cask_value_t *
cask_store_lookup (cask_store_t *self, cask_str_t key)
{
    s_entry_t *entry = cask_keymap_lookup (self->entries, key.ptr, key.len);
    if (!entry)
        return NULL;
    if (entry->value)
        s_touch (self, entry);
    else
    if (s_unspill (self, entry))
        return NULL;
    return entry->value;
}

bool
cask_store_holds (cask_store_t *self, cask_str_t key, uint64_t *nbytes)
{
    s_entry_t *entry = cask_keymap_lookup (self->entries, key.ptr, key.len);
    if (entry && nbytes)
        *nbytes = s_entry_nbytes (entry);
    return entry != NULL;
}

int
cask_store_remove (cask_store_t *self, cask_str_t key)
{
    s_entry_t *entry = cask_keymap_remove (self->entries, key.ptr, key.len);
    if (!entry)
        return -1;
    s_entry_destroy (self, &entry);
    return 0;
}

//  A fresh map also gives back the slots the old one had grown to; without
//  memory for one, the entries leave the old map one by one.
void
cask_store_clear (cask_store_t *self)
{
    cask_keymap_t *fresh = cask_keymap_new (s_entry_key);
    s_entry_t *entry;
    size_t cursor = 0;
    while ((entry = cask_keymap_next (self->entries, &cursor))) {
        if (!fresh) {
            cask_keymap_remove (self->entries, entry->key, entry->key_len);
            cursor = 0;
        }
        s_entry_destroy (self, &entry);
    }
    if (fresh) {
        cask_keymap_destroy (&self->entries);
        self->entries = fresh;
    }
}

//  Makes the store's own directory in dir and uses it from now on.
//  Returns 0, or -1 (errno set, the error recorded).
static int
s_spill_dir_open (cask_store_t *self, const char *dir)
{
    if (self->stats.bytes_on_disk) {
        s_record_error (self, "cannot spill to %s: values are spilled to %s", dir, self->dir);
        errno = EBUSY;
        return -1;
    }
    size_t size = strlen (dir) + 48;
    char *path = (char *) malloc (size);
    if (!path) {
        errno = ENOMEM;
        return -1;
    }
    snprintf (path, size, "%s/cask-spill-%d-XXXXXX", dir, (int) getpid ());
    int fd = -1;
    if (mkdtemp (path)) {
        fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            rmdir (path);
    }
    if (fd < 0) {
        int error = errno;
        s_record_error (self, "cannot make a spill directory in %s: %s", dir, strerror (error));
        free (path);
        errno = error;
        return -1;
    }
    s_spill_dir_close (self);
    self->dir = path;
    self->dirfd = fd;
    return 0;
}

int
cask_store_set_spill (cask_store_t *self, const char *dir, uint64_t target_bytes)
{
    if (dir && s_spill_dir_open (self, dir))
        return -1;
    if (self->dirfd < 0) {
        s_record_error (self, "no spill directory given");
        errno = EINVAL;
        return -1;
    }
    self->target = target_bytes;
    self->retry_at = 0;
    s_spill_to (self, target_bytes, NULL);
    return 0;
}

int
cask_store_spill (cask_store_t *self, uint64_t target_bytes)
{
    return self->dirfd < 0 ? -1 : s_spill_to (self, target_bytes, NULL);
}

const char *
cask_store_spill_dir (cask_store_t *self)
{
    return self->dir;
}

const char *
cask_store_spill_error (cask_store_t *self)
{
    return self->error [0] ? self->error : NULL;
}

size_t
cask_store_size (cask_store_t *self)
{
    return cask_keymap_size (self->entries);
}

uint64_t
cask_store_bytes (cask_store_t *self)
{
    return self->bytes;
}

uint64_t
cask_store_gets_served (cask_store_t *self)
{
    return self->gets_served;
}

uint64_t
cask_store_bytes_served (cask_store_t *self)
{
    return self->bytes_served;
}

uint64_t
cask_store_gets_missed (cask_store_t *self)
{
    return self->gets_missed;
}

uint64_t
cask_store_bytes_in_memory (cask_store_t *self)
{
    return self->stats.bytes_in_memory;
}

void
cask_store_spill_stats (cask_store_t *self, cask_store_spill_stats_t *stats)
{
    *stats = self->stats;
}

//  ---------------------------------------------------------------------
//  GET -> DATA

static void
s_reply_start (s_reply_t *reply)
{
    cask_buf_reset (&reply->body);
    cask_put_u32 (&reply->body, 0);
    reply->count = 0;
}

static void
s_reply_send (s_reply_t *reply, void *router, cask_message_t *request)
{
    cask_buf_patch_u32 (&reply->body, 0, reply->count);
    cask_send (router, &request->routing, CASK_MSG_DATA, &reply->body, &reply->msg);
}

//  Adds a found record for key. A value too large for one message is
//  refused (-1) rather than breaking the protocol's limits, so its frames
//  go to a message of their own first and join the reply only once the
//  record is known to fit (frame indices are relative to the record's
//  first frame, so moving them needs no renumbering).
static int
s_reply_add_value (s_reply_t *reply, cask_str_t key, cask_value_t *value)
{
    size_t mark = reply->body.size;
    cask_put_str8 (&reply->body, key);
    cask_put_u8 (&reply->body, 1);
    size_t nframes_at = reply->body.size;
    cask_put_u32 (&reply->body, 0);

    cask_message_t own;
    cask_message_init (&own);
    int rc = cask_value_encode (value, &reply->body, &own, NULL, NULL);
    if (reply->body.failed
    ||  reply->body.size - mark > S_RECORD_BODY_MAX
    ||  own.nframes > S_DATA_FRAMES_MAX)
        rc = -1;
    for (size_t index = 0; rc == 0 && index < own.nframes; index++)
        if (cask_message_move_frame (&reply->msg, &own.frames [index]) < 0)
            rc = -1;
    if (rc == 0)
        cask_buf_patch_u32 (&reply->body, nframes_at, (uint32_t) own.nframes);
    else {
        reply->body.size = mark;
        reply->body.failed = false;
    }
    cask_message_close (&own);
    return rc;
}

static void
s_reply_add_missing (s_reply_t *reply, cask_str_t key)
{
    cask_put_str8 (&reply->body, key);
    cask_put_u8 (&reply->body, 0);
}

static bool
s_reply_full (s_reply_t *reply)
{
    return reply->body.size >= S_DATA_BODY_MAX
        || reply->msg.nframes >= S_DATA_FRAMES_MAX;
}

//  The value is encoded (its bytes referenced by the reply's frames)
//  before the next lookup could spill it.
static void
s_serve_key (cask_store_t *self, s_reply_t *reply, cask_str_t key)
{
    cask_value_t *value = cask_store_lookup (self, key);
    if (value && s_reply_add_value (reply, key, value) == 0) {
        self->gets_served++;
        self->bytes_served += cask_value_nbytes (value);
    }
    else {
        s_reply_add_missing (reply, key);
        self->gets_missed++;
    }
    reply->count++;
}

//  Reads the keys of a GET body; all or nothing, so that a malformed
//  request gets ERROR and no partial DATA.
static int
s_check_keys (cask_message_t *request, uint32_t *count)
{
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&request->body), zmq_msg_size (&request->body));
    *count = cask_get_u32 (&rd);
    for (uint32_t index = 0; index < *count && !rd.failed; index++)
        cask_get_str8 (&rd);
    return cask_rd_done (&rd) ? 0 : -1;
}

int
cask_store_serve (cask_store_t *self, void *router, cask_message_t *request,
                  const char **why)
{
    uint32_t count;
    if (s_check_keys (request, &count) || request->nframes) {
        *why = "malformed GET";
        return -1;
    }
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&request->body), zmq_msg_size (&request->body));
    cask_get_u32 (&rd);

    s_reply_t *reply = &self->reply;
    s_reply_start (reply);
    for (uint32_t index = 0; index < count; index++) {
        s_serve_key (self, reply, cask_get_str8 (&rd));
        if (s_reply_full (reply) && index + 1 < count) {
            s_reply_send (reply, router, request);
            s_reply_start (reply);
        }
    }
    s_reply_send (reply, router, request);
    return 0;
}
