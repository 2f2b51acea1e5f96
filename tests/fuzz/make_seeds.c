/* Writes the fuzz seed corpus into the directory given: for every test
 * pipeline, random valid records (tests/support/avro_gen.c), and for each a
 * few hostile variants (cut short, a trailing byte, an 11-byte varint in
 * front, an out-of-range first varint). Each file is byte 0 = the pipeline,
 * then the record (the format of fuzz_decode.c). Deterministic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_gen.h"
#include "pipelines.h"

static int seeds;

static void put(const char *dir, size_t pipe, const char *what, int i, const unsigned char *rec,
                size_t n) {
        char path[512];
        snprintf(path, sizeof(path), "%s/p%zu-%s-%d", dir, pipe, what, i);
        FILE *fp = fopen(path, "wb");
        if (!fp) {
                perror(path);
                exit(1);
        }
        unsigned char sel = (unsigned char)pipe;
        fwrite(&sel, 1, 1, fp);
        fwrite(rec, 1, n, fp);
        fclose(fp);
        seeds++;
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: make_seeds DIR\n");
                return 2;
        }
        static unsigned char rec[1 << 16], bad[(1 << 16) + 16];
        for (size_t p = 0; p < test_pipeline_cnt; p++) {
                test_fixture_t fx;
                char err[512];
                if (test_fixture_open(&fx, &test_pipelines[p], err, sizeof(err))) {
                        fprintf(stderr, "make_seeds: %s\n", err);
                        return 1;
                }
                avro_gen_t g;
                avro_gen_init(&g, 4242 + p);
                for (int i = 0; i < 4; i++) {
                        size_t n = avro_gen_record(&g, fx.schema, rec, sizeof(rec));
                        if (n == 0 || n > 4000)
                                continue; /* keep seeds small */
                        put(argv[1], p, "valid", i, rec, n);
                        put(argv[1], p, "cut", i, rec, n / 2);
                        memcpy(bad, rec, n);
                        bad[n] = 0x02;
                        put(argv[1], p, "trailing", i, bad, n + 1);
                        memcpy(bad, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11);
                        memcpy(bad + 11, rec, n);
                        put(argv[1], p, "varint11", i, bad, n + 11);
                        memcpy(bad, "\xff\xff\xff\xff\x0f", 5); /* -2^31 .. : a huge length or index */
                        memcpy(bad + 5, rec, n);
                        put(argv[1], p, "huge", i, bad, n + 5);
                }
                test_fixture_close(&fx);
        }
        /* Confluent framing (byte 0 = 0x80): ids 1-4 before an event.avsc record */
        test_fixture_t fx;
        char err[512];
        if (test_fixture_open(&fx, &test_pipelines[0], err, sizeof(err))) {
                fprintf(stderr, "make_seeds: %s\n", err);
                return 1;
        }
        avro_gen_t g;
        avro_gen_init(&g, 99);
        for (int id = 1; id <= 4; id++) {
                size_t n = avro_gen_record(&g, fx.schema, rec + 5, sizeof(rec) - 5);
                rec[0] = 0;
                rec[1] = rec[2] = rec[3] = 0;
                rec[4] = (unsigned char)id;
                put(argv[1], 0x80, "framed", id, rec, n + 5);
        }
        test_fixture_close(&fx);
        printf("make_seeds: %d seeds in %s\n", seeds, argv[1]);
        return 0;
}
