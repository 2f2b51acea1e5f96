/* Unit tests of src/resume.c (a stored offset against the partition's log)
 * and dmp_engine_partition_discard (issue 22 item 8). The daemon's use of
 * them runs against the real broker: tests/integration/test_offsets.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "avro_enc.h"
#include "config.h"
#include "engine.h"
#include "resume.h"
#include "store.h"
#include "test_sink.h"
#include "util.h"

static void test_classify(void **state) {
        (void)state;
        assert_int_equal(dmp_resume_classify(5, 0, 10), DMP_RESUME_OK);
        assert_int_equal(dmp_resume_classify(10, 0, 10), DMP_RESUME_OK);  /* read to the end */
        assert_int_equal(dmp_resume_classify(0, 0, 0), DMP_RESUME_OK);    /* empty */
        assert_int_equal(dmp_resume_classify(700, 0, 466), DMP_RESUME_BEYOND_END);
        assert_int_equal(dmp_resume_classify(11, 0, 10), DMP_RESUME_BEYOND_END);
        assert_int_equal(dmp_resume_classify(500, 1200, 2000), DMP_RESUME_BELOW_START);
        assert_int_equal(dmp_resume_classify(1200, 1200, 1200), DMP_RESUME_OK);
}

/* A partition's state discarded: the store forgets its offset, stream time
 * and entries; the other partitions keep theirs. */
static void test_discard(void **state) {
        (void)state;
        char dir[] = "/tmp/dmp-resume-XXXXXX", text[1024], err[512] = "";
        assert_non_null(mkdtemp(dir));
        snprintf(text, sizeof(text),
                 "[input]\ntopic = t\nschema = schemas/event.avsc\nkey.field = user_id\n"
                 "time.field = ts\n[state]\ndir = %s\n[output]\ntopic = o\n"
                 "[measure m]\nexpr = price\n[window w]\nsize.ms = 1000\n", dir);
        dmp_conf_t *conf = dmp_conf_new();
        assert_int_equal(dmp_conf_load_string(conf, "r.ini", text), 0);
        assert_int_equal(dmp_conf_validate(conf), 0);
        test_sink_t ts;
        memset(&ts, 0, sizeof(ts));
        int cerr;
        dmp_engine_t *e = dmp_engine_new(conf, test_sink_init(&ts), &cerr, err, sizeof(err));
        assert_non_null(e);
        unsigned char buf[128];
        for (int32_t p = 0; p < 2; p++) {
                int64_t next;
                assert_int_equal(dmp_engine_partition_open(e, p, &next, err, sizeof(err)), 0);
                assert_int_equal(next, -1);
                for (int i = 0; i < 3; i++) {
                        unsigned char *q = buf;
                        q = dmp_avro_put_string(q, "u", 1);
                        q = dmp_avro_put_string(q, "s", 1);
                        q = dmp_avro_put_long(q, 100 * i);
                        q = dmp_avro_put_double(q, 1.5);
                        q = dmp_avro_put_long(q, 0);
                        q = dmp_avro_put_long(q, 0);
                        assert_int_equal(dmp_engine_process(e, p, 700 + i, NULL, 0, 0, buf,
                                                            (size_t)(q - buf), err, sizeof(err)),
                                         0);
                }
        }
        assert_int_equal(dmp_engine_commit(e, err, sizeof(err)), 0);
        assert_int_equal(dmp_engine_partition_discard(e, 0, err, sizeof(err)), 0);
        assert_true(dmp_engine_wants(e, 0, 0)); /* open again, from nothing */
        assert_false(dmp_engine_wants(e, 1, 702));
        dmp_engine_destroy(e);
        /* what the store kept */
        dmp_store_t *st = dmp_store_open(dir, 0, err, sizeof(err));
        assert_non_null(st);
        int64_t next, stream_time;
        assert_int_equal(dmp_store_get_meta(st, 0, &next, &stream_time, err, sizeof(err)), 0);
        assert_int_equal(dmp_store_get_meta(st, 1, &next, &stream_time, err, sizeof(err)), 1);
        assert_int_equal(next, 703);
        dmp_store_close(st);
        dmp_conf_destroy(conf);
        dmp_rmtree(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_classify),
                cmocka_unit_test(test_discard),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
