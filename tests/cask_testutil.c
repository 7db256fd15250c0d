/*  cask_testutil.c - what every Check test program of cask shares. */
#include "cask_testutil.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

int cask_test_run (const char *name, TCase *tc, ...)
{
    Suite *suite = suite_create (name);
    va_list cases;
    va_start (cases, tc);
    for (; tc; tc = va_arg (cases, TCase *))
        suite_add_tcase (suite, tc);
    va_end (cases);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

double cask_test_double_from_bits (uint64_t bits)
{
    double d;
    memcpy (&d, &bits, sizeof d);
    return d;
}

void
cask_test_pair_open (cask_test_pair_t *self, const char *transport)
{
    self->ctx = zmq_ctx_new ();
    self->router = zmq_socket (self->ctx, ZMQ_ROUTER);
    self->dealer = zmq_socket (self->ctx, ZMQ_DEALER);
    int timeout = 5000;
    zmq_setsockopt (self->router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt (self->dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    char endpoint [64];
    size_t size = sizeof endpoint;
    if (strcmp (transport, "tcp") == 0) {
        ck_assert_int_eq (zmq_bind (self->router, "tcp://127.0.0.1:*"), 0);
        zmq_getsockopt (self->router, ZMQ_LAST_ENDPOINT, endpoint, &size);
    }
    else {
        snprintf (endpoint, sizeof endpoint, "inproc://test-%p", (void *) self);
        ck_assert_int_eq (zmq_bind (self->router, endpoint), 0);
    }
    ck_assert_int_eq (zmq_connect (self->dealer, endpoint), 0);
}

void
cask_test_pair_close (cask_test_pair_t *self)
{
    zmq_close (self->router);
    zmq_close (self->dealer);
    zmq_ctx_term (self->ctx);
}
