/*  fuzz_decode.c - decodes any cask message the way its receiver does,
    and checks that the codec writes back what it read (fuzz_common.h).

    Records are read with the codec's get functions, in batches where the
    command has them, then written again with the matching put functions:
    the bytes must be those read. Values are decoded from the record's own
    payload frames, encoded into a new message and decoded again: the two
    must be equal. A reader that accepts what its writer would never write,
    or a writer that cannot write what its reader accepted, fails the run.
*/
#include "fuzz_common.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    cask_message_t *msg;
    cask_rd_t rd;               //  over the body
    size_t frame_base;          //  first payload frame of the next record
    size_t frames_wanted;       //  payload frames the command takes
    bool malformed;             //  something a receiver would refuse
    cask_buf_t out;             //  a record written again
} s_decoder_t;

typedef void (s_record_fn) (s_decoder_t *self);

//  The record read from start on must have been written again into out.
static void
s_same (s_decoder_t *self, const uint8_t *start, const char *what)
{
    if (self->rd.failed)
        return;
    size_t size = (size_t) (self->rd.ptr - start);
    if (self->out.failed || self->out.size != size
    ||  (size && memcmp (self->out.data, start, size) != 0))
        fuzz_fail ("codec: a %s record of %zu bytes is written back as %zu other bytes%s",
                   what, size, self->out.size, self->out.failed ? " (the writer failed)" : "");
}

//  A record whose get and put functions mirror each other.
#define S_RECORD(name, type, get, put) \
    static void \
    s_##name (s_decoder_t *self) \
    { \
        const uint8_t *start = self->rd.ptr; \
        type rec; \
        get (&self->rd, &rec); \
        cask_buf_reset (&self->out); \
        if (!self->rd.failed) \
            put (&self->out, &rec); \
        s_same (self, start, #name); \
    }

S_RECORD (hello, cask_hello_t, cask_hello_get, cask_hello_put)
S_RECORD (func, cask_func_t, cask_func_get, cask_func_put)
S_RECORD (worker_info, cask_worker_info_t, cask_worker_info_get, cask_worker_info_put)
S_RECORD (state, cask_state_rec_t, cask_state_get, cask_state_put)
S_RECORD (done, cask_done_t, cask_done_get, cask_done_put)
S_RECORD (heartbeat, cask_heartbeat_t, cask_heartbeat_get, cask_heartbeat_put)
S_RECORD (view, cask_view_t, cask_view_get, cask_view_put)
S_RECORD (scatter, cask_scatter_t, cask_scatter_get, cask_scatter_put)
S_RECORD (stored, cask_stored_t, cask_stored_get, cask_stored_put)
S_RECORD (dataset, cask_dataset_t, cask_dataset_get, cask_dataset_put)
S_RECORD (stolen, cask_stolen_t, cask_stolen_get, cask_stolen_put)
S_RECORD (copy, cask_copy_t, cask_copy_get, cask_copy_put)
S_RECORD (error, cask_error_t, cask_error_get, cask_error_put)

static void
s_key (s_decoder_t *self)
{
    cask_get_str8 (&self->rd);
}

//  u32 count, then count records (each takes at least a byte, so a lying
//  count stops at the end of the body).
static void
s_batch (s_decoder_t *self, s_record_fn *record)
{
    uint32_t count = cask_get_u32 (&self->rd);
    for (uint32_t index = 0; index < count && !self->rd.failed && !self->malformed; index++)
        record (self);
}

//  Encodes value, decodes it again: it must come back equal.
static void
s_value_again (const cask_value_t *value)
{
    cask_buf_t body;
    cask_message_t frames;
    cask_buf_init (&body);
    cask_message_init (&frames);
    if (cask_value_encode (value, &body, &frames, NULL, NULL))
        fuzz_fail ("codec: a decoded value cannot be encoded again");
    cask_rd_t rd;
    cask_rd_init (&rd, body.data, body.size);
    const char *why = "?";
    cask_value_t *again = cask_value_decode (&rd, &frames, 0, frames.nframes, NULL, 0, &why);
    if (!again || !cask_rd_done (&rd) || !cask_value_equal (value, again))
        fuzz_fail ("codec: a value encoded again decodes %s (%s)",
                   again ? "to another value" : "no more", again ? "" : why);
    char text [80];
    cask_value_print (again, text, sizeof text);
    cask_value_nbytes (again);
    cask_value_destroy (&again);
    cask_message_close (&frames);
    cask_buf_free (&body);
}

//  Decodes one value from rd, of the record whose payload frames are
//  nframes from self->frame_base on; refs stand for a task's dependencies.
//  Returns 0, or -1 when it did not decode.
static int
s_value (s_decoder_t *self, cask_rd_t *rd, size_t nframes, cask_value_t **refs, size_t nrefs)
{
    cask_value_t *value = cask_value_decode (rd, self->msg, self->frame_base, nframes,
                                             refs, nrefs, NULL);
    if (!value)
        return -1;
    s_value_again (value);
    cask_value_destroy (&value);
    return 0;
}

//  The record claims nframes payload frames: the message must have them.
static bool
s_frames_there (s_decoder_t *self, uint32_t nframes)
{
    if (nframes <= self->msg->nframes - self->frame_base)
        return true;
    self->malformed = true;
    return false;
}

//  Writes the task record back: head, dependency entries, tail, then the
//  restrictions block and the time limit when flagged.
static void
s_task_again (s_decoder_t *self, const cask_task_t *rec, bool with_holders)
{
    cask_buf_reset (&self->out);
    cask_task_put_head (&self->out, rec);
    cask_rd_t deps = rec->deps;
    for (uint32_t index = 0; index < rec->ndeps; index++) {
        cask_put_str8 (&self->out, cask_get_str8 (&deps));
        if (with_holders)
            cask_put_str8 (&self->out, cask_get_str8 (&deps));
    }
    if (!cask_rd_done (&deps))
        fuzz_fail ("codec: a task's dependency entries do not read back");
    cask_task_put_tail (&self->out, rec->nframes, rec->args);
    if (rec->flags & CASK_TASK_RESTRICTED) {
        cask_rd_t rd;
        cask_restrictions_t restrictions;
        cask_rd_init (&rd, rec->restrictions.ptr, rec->restrictions.len);
        cask_restrictions_get (&rd, &restrictions);
        if (!cask_rd_done (&rd))
            fuzz_fail ("codec: a task's restrictions block does not read back");
        cask_restrictions_put (&self->out, &restrictions);
    }
    if (rec->flags & CASK_TASK_TIMED)
        cask_put_u32 (&self->out, rec->timeout_ms);
}

//  Decodes the task's arguments with a distinct value for each dependency;
//  the broker never decodes them, so they do not make the message
//  malformed.
static void
s_task_args (s_decoder_t *self, const cask_task_t *rec)
{
    cask_value_t **refs = (cask_value_t **) calloc (rec->ndeps + 1, sizeof (cask_value_t *));
    if (!refs)
        fuzz_fail ("out of memory for %u refs", rec->ndeps);
    for (uint32_t index = 0; index < rec->ndeps; index++)
        refs [index] = cask_int64 (index);
    cask_rd_t rd;
    cask_rd_init (&rd, rec->args.ptr, rec->args.len);
    s_value (self, &rd, rec->nframes, refs, rec->ndeps);
    for (uint32_t index = 0; index < rec->ndeps; index++)
        cask_value_destroy (&refs [index]);
    free (refs);
}

static void
s_task (s_decoder_t *self, bool with_holders)
{
    const uint8_t *start = self->rd.ptr;
    cask_task_t rec;
    cask_task_get (&self->rd, &rec, with_holders);
    if (self->rd.failed)
        return;
    s_task_again (self, &rec, with_holders);
    s_same (self, start, with_holders ? "TASK" : "SUBMIT");
    if (!s_frames_there (self, rec.nframes))
        return;
    s_task_args (self, &rec);
    self->frame_base += rec.nframes;
}

static void
s_submit (s_decoder_t *self)
{
    s_task (self, false);
}

static void
s_dispatched (s_decoder_t *self)
{
    s_task (self, true);
}

//  DATA (with_found) and PUT records: key, [found,] nframes, value.
static void
s_keyed_value (s_decoder_t *self, bool with_found)
{
    cask_get_str8 (&self->rd);
    uint8_t found = with_found ? cask_get_u8 (&self->rd) : 1;
    if (found > 1)
        self->malformed = true;
    if (found != 1 || self->malformed)
        return;
    uint32_t nframes = cask_get_u32 (&self->rd);
    if (self->rd.failed || !s_frames_there (self, nframes))
        return;
    if (s_value (self, &self->rd, nframes, NULL, 0) < 0)
        self->malformed = true;
    else
        self->frame_base += nframes;
}

static void
s_data (s_decoder_t *self)
{
    s_keyed_value (self, true);
}

static void
s_put (s_decoder_t *self)
{
    s_keyed_value (self, false);
}

static void
s_retire (s_decoder_t *self)
{
    const uint8_t *start = self->rd.ptr;
    cask_retire_t rec;
    cask_retire_get (&self->rd, &rec);
    if (self->rd.failed)
        return;
    uint32_t *ids = (uint32_t *) calloc (rec.nids + 1, sizeof (uint32_t));
    if (!ids)
        fuzz_fail ("out of memory for %u ids", rec.nids);
    for (uint32_t index = 0; index < rec.nids; index++)
        ids [index] = cask_get_u32 (&rec.ids);
    cask_buf_reset (&self->out);
    cask_retire_put (&self->out, rec.keep, ids, rec.nids);
    free (ids);
    s_same (self, start, "RETIRE");
}

static void
s_welcome (s_decoder_t *self)
{
    cask_get_u32 (&self->rd);
    s_batch (self, s_func);
    s_batch (self, s_worker_info);
}

//  REGISTER, REGISTERED, LIBRARY: head, then nfuncs functions.
static void
s_functions (s_decoder_t *self)
{
    const uint8_t *start = self->rd.ptr;
    cask_library_t head;
    cask_library_get (&self->rd, &head);
    cask_buf_reset (&self->out);
    cask_library_put (&self->out, &head);
    s_same (self, start, "library");
    for (uint32_t index = 0; index < head.nfuncs && !self->rd.failed; index++)
        s_func (self);
}

//  REPORT: a JSON object for people and scripts.
static void
s_report (s_decoder_t *self)
{
    cJSON *report = cJSON_ParseWithLength ((const char *) self->rd.ptr,
                                           (size_t) (self->rd.end - self->rd.ptr));
    if (!cJSON_IsObject (report))
        self->malformed = true;
    cJSON_Delete (report);
    self->rd.ptr = self->rd.end;
}

//  Reads the body by the layout of its command; payload frames are used by
//  the records (SUBMIT, TASK, DATA, PUT) or wanted whole (frames_wanted).
static void
s_body (s_decoder_t *self)
{
    switch (self->msg->command) {
        case CASK_MSG_HELLO: s_hello (self); break;
        case CASK_MSG_REGISTER:
        case CASK_MSG_LIBRARY:
            self->frames_wanted = 1;
            s_functions (self);
            break;
        case CASK_MSG_REGISTERED: s_functions (self); break;
        case CASK_MSG_SUBMIT: s_batch (self, s_submit); break;
        case CASK_MSG_TASK: s_batch (self, s_dispatched); break;
        case CASK_MSG_RELEASE:
        case CASK_MSG_CANCEL:
        case CASK_MSG_FIRE:
        case CASK_MSG_FREE:
        case CASK_MSG_STEAL:
        case CASK_MSG_GET: s_batch (self, s_key); break;
        case CASK_MSG_STATUS:           //  empty: the status view
            if (self->rd.ptr < self->rd.end)
                s_view (self);
            break;
        case CASK_MSG_BYE:
        case CASK_MSG_RESTART:
        case CASK_MSG_RESTARTED: break;
        case CASK_MSG_HEARTBEAT:        //  the broker's is the interval alone
            if (self->rd.end - self->rd.ptr == 4)
                cask_get_u32 (&self->rd);
            else
                s_heartbeat (self);
            break;
        case CASK_MSG_PAUSE: cask_get_u8 (&self->rd); break;
        case CASK_MSG_SCATTER: s_batch (self, s_scatter); break;
        case CASK_MSG_PUBLISH:
        case CASK_MSG_LOOKUP:
        case CASK_MSG_UNPUBLISH:
        case CASK_MSG_DATASET: s_dataset (self); break;
        case CASK_MSG_RETIRE:           //  empty from the broker to a worker
            if (self->rd.ptr < self->rd.end)
                s_retire (self);
            break;
        case CASK_MSG_RETIRED: s_retire (self); break;
        case CASK_MSG_WELCOME: s_welcome (self); break;
        case CASK_MSG_STATE: s_batch (self, s_state); break;
        case CASK_MSG_WORKER: s_worker_info (self); break;
        case CASK_MSG_REPORT: s_report (self); break;
        case CASK_MSG_ERROR:
        case CASK_MSG_LIBFAIL: s_error (self); break;
        case CASK_MSG_DONE: s_batch (self, s_done); break;
        case CASK_MSG_STOLEN: s_batch (self, s_stolen); break;
        case CASK_MSG_COPY: s_batch (self, s_copy); break;
        case CASK_MSG_DATA: s_batch (self, s_data); break;
        case CASK_MSG_PUT: s_batch (self, s_put); break;
        case CASK_MSG_STORED: s_batch (self, s_stored); break;
        default:
            //  A command of cask_proto.h this file does not know yet
            if (strcmp (cask_command_name (self->msg->command), "unknown") != 0)
                fuzz_fail ("tests/fuzz/fuzz_decode.c has no layout for %s: add it",
                           cask_command_name (self->msg->command));
            self->malformed = true;
    }
}

int
fuzz_decode (cask_message_t *msg)
{
    s_decoder_t self = { .msg = msg };
    cask_rd_init (&self.rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    cask_buf_init (&self.out);
    s_body (&self);
    cask_buf_free (&self.out);
    size_t frames_used = self.frames_wanted ? self.frames_wanted : self.frame_base;
    return self.malformed || !cask_rd_done (&self.rd) || frames_used != msg->nframes ? -1 : 0;
}
