/* libFuzzer target: state read back from RocksDB (`make fuzz`; fuzz.h).
 *
 * A corrupted or foreign store must fail cleanly, never crash. Each input
 * plants values in the store of a fresh engine (fuzz_engine.h: every
 * window kind, groups, every pattern kind), opens partition 0 (the engine
 * loads window entries, session / sliding key states, late counters,
 * group partials, histories and topk candidates, and the instance's
 * histories), then runs events, idle ticks, queries and commits on what it
 * loaded, as the daemon would. Every planted window entry also goes
 * through dmp_engine_describe_entry (`dmpflow state verify`).
 *
 * Input: byte 0 is ignored (room for flags), then records, each an op byte
 * (mod 8; I only for the byte 2 itself, other bytes 2 mod 8 are G: an
 * instance value costs a new engine) and its fields (fuzz.h reads 0 past
 * the end):
 *   0 W  win:u8 klen:u8 key start:i64 vlen:u16 value   a window entry
 *   1 G  klen:u8 key vlen:u16 value                    a group value of the partition
 *   2 I  klen:u8 key vlen:u16 value                    an instance value (partition -1)
 *   3 M  next_offset:i64 stream_time:i64               the partition.s metadata
 *   4 E  ulen:u8 user slen:u8 segment ts:i64 price:f64 qty:i32 clicks:i64
 *   5 T  delta:u32                                     an idle tick, delta ms later
 *   6 Q  what:u8 nlen:u8 name                          a state query
 *   7 C                                                a commit
 * W, G, I and M are written before the partition opens; E, T, Q and C
 * run after it, in order.
 *
 * Invariants: opening fails with a message or succeeds; describe_entry
 * answers 0 or -1 with a message; nothing crashes or reads out of
 * bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_engine.h"
#include "query.h"
#include "store.h"

static fuzz_engine_t fe;
static int32_t part; /* the partition of this input: a new one each time */

static int fresh_always; /* FUZZ_STATE_FRESH set, or replaying regressions */
static int uses;         /* inputs run on the engine since it started */

int fuzz_state_init(void) {
        fresh_always = getenv("FUZZ_STATE_FRESH") != NULL;
        return 0;
}

void fuzz_state_fini(void) {
        if (fe.e)
                fuzz_engine_close(&fe, 1);
}

static void bad(const char *what, const char *err) {
        fprintf(stderr, "fuzz_state: %s: %s\n", what, err);
        abort();
}

static int op_of(uint8_t b) {
        return b == 2 ? 2 : b % 8 == 2 ? 1 : b % 8;
}

/* Plants the W, G, I and M records (pass 0) or runs E, T, Q and C (pass 1). */
static void run(fz_t f, int pass) {
        dmp_store_t *st = dmp_engine_store(fe.e);
        char err[512], line[4096];
        const uint8_t *k, *v, *s;
        while (f.n) {
                int op = op_of(fz_u8(&f));
                size_t kl, vl, sl;
                err[0] = '\0';
                switch (op) {
                case 0: {
                        int win = fz_u8(&f);
                        kl = fz_bytes(&f, fz_u8(&f), &k);
                        int64_t start = fz_i64(&f);
                        vl = fz_bytes(&f, (size_t)fz_u64(&f, 2), &v);
                        if (pass)
                                break;
                        dmp_store_put_entry(st, part, win, (const char *)k, kl, start, v, vl);
                        int r = dmp_engine_describe_entry(fe.e, win, start, v, vl, line,
                                                          sizeof(line), err, sizeof(err));
                        if (r != 0 && (r != -1 || !err[0]))
                                bad("describe_entry", "rejected without a message");
                        break;
                }
                case 1:
                case 2:
                        kl = fz_bytes(&f, fz_u8(&f), &k);
                        vl = fz_bytes(&f, (size_t)fz_u64(&f, 2), &v);
                        if (!pass)
                                dmp_store_put_group(st, op == 1 ? part : -1, (const char *)k, kl, v,
                                                    vl);
                        break;
                case 3: {
                        int64_t off = fz_i64(&f), stime = fz_i64(&f);
                        if (!pass)
                                dmp_store_put_meta(st, part, off, stime);
                        break;
                }
                case 4: {
                        const uint8_t *u, *g;
                        size_t ul = fz_bytes(&f, fz_u8(&f), &u);
                        size_t gl = fz_bytes(&f, fz_u8(&f), &g);
                        int64_t ts = fz_i64(&f);
                        double price = fz_double(&f);
                        int32_t qty = (int32_t)fz_u64(&f, 4);
                        int64_t clicks = fz_i64(&f);
                        if (!pass)
                                break;
                        unsigned char buf[640];
                        size_t n = fuzz_event(buf, (const char *)u, ul, (const char *)g, gl, ts,
                                              price, qty, clicks);
                        int64_t next;
                        dmp_engine_partition_open(fe.e, part, &next, err, sizeof(err));
                        if (next < 0)
                                next = 0;
                        if (dmp_engine_wants(fe.e, part, next))
                                dmp_engine_process(fe.e, part, next, NULL, 0, 0, buf, n, err,
                                                   sizeof(err));
                        break;
                }
                case 5: {
                        int64_t delta = (int64_t)fz_u64(&f, 4);
                        if (pass)
                                dmp_engine_idle_tick(fe.e, dmp_now_ms() + delta, 1);
                        break;
                }
                case 6: {
                        int what = fz_u8(&f) % 3;
                        sl = fz_bytes(&f, fz_u8(&f), &s);
                        if (!pass)
                                break;
                        static const char *const kinds[] = {"windows/tum/", "groups/seg/",
                                                            "patterns/"};
                        dmp_buf_t path = {0}, out = {0};
                        dmp_buf_printf(&path, "%s%.*s", kinds[what], (int)sl, (const char *)s);
                        dmp_query_answer(fe.e, path.p, 5, &out);
                        dmp_buf_free(&path);
                        dmp_buf_free(&out);
                        break;
                }
                case 7:
                        if (pass) {
                                dmp_engine_emit_updates(fe.e);
                                dmp_engine_emit_groups(fe.e);
                                dmp_engine_commit(fe.e, err, sizeof(err));
                        }
                        break;
                }
        }
}

/* Whether an input holds instance values (op 2), which only a fresh
 * engine reads (the instance's histories load once). */
static int has_instance_values(fz_t f) {
        while (f.n) {
                int op = op_of(fz_u8(&f));
                const uint8_t *x;
                switch (op) {
                case 0:
                        fz_u8(&f);
                        fz_bytes(&f, fz_u8(&f), &x);
                        fz_i64(&f);
                        fz_bytes(&f, (size_t)fz_u64(&f, 2), &x);
                        break;
                case 1:
                case 2:
                        fz_bytes(&f, fz_u8(&f), &x);
                        fz_bytes(&f, (size_t)fz_u64(&f, 2), &x);
                        if (op == 2)
                                return 1;
                        break;
                case 3: fz_u64(&f, 8); fz_u64(&f, 8); break;
                case 4:
                        fz_bytes(&f, fz_u8(&f), &x);
                        fz_bytes(&f, fz_u8(&f), &x);
                        fz_u64(&f, 8); fz_u64(&f, 8); fz_u64(&f, 4); fz_u64(&f, 8);
                        break;
                case 5: fz_u64(&f, 4); break;
                case 6: fz_u8(&f); fz_bytes(&f, fz_u8(&f), &x); break;
                default: break;
                }
        }
        return 0;
}

int fuzz_state_one(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        fz_t f = {data + 1, size - 1};
        /* Opening an engine (RocksDB) costs ~80 ms under ASan: the engine
         * is kept across inputs (each in a partition of its own) and
         * started anew (empty store) only when an input plants
         * instance values (read once, by a new engine) or asks (byte 0
         * bit 0), and every 256 inputs. What outlives an input meanwhile
         * (the instance's histories of groups, the groups' highest
         * watermark, recent patterns, a failed state read that fails the
         * next commit) can make a finding depend on earlier inputs:
         * FUZZ_STATE_FRESH=1 starts every input anew, to replay one
         * exactly (the regression test does). */
        if (fe.e && (fresh_always || uses >= 256 || has_instance_values(f)))
                fuzz_engine_close(&fe, 1);
        if (!fe.e) {
                if (fuzz_engine_open(&fe))
                        abort();
                uses = 0;
        }
        part = uses++;
        char err[512] = "";
        run(f, 0);
        if (dmp_store_commit(dmp_engine_store(fe.e), err, sizeof(err)))
                bad("planting the values", err);
        int64_t next;
        err[0] = '\0';
        if (dmp_engine_partition_open(fe.e, part, &next, err, sizeof(err)) == 0) {
                run(f, 1);
                dmp_engine_emit_updates(fe.e);
                dmp_engine_emit_groups(fe.e);
                if (dmp_engine_commit(fe.e, err, sizeof(err)) == 0)
                        dmp_engine_sync(fe.e, err, sizeof(err));
                dmp_engine_partition_close(fe.e, part);
        } else if (!err[0]) {
                bad("opening the partition", "failed without a message");
        }
        return 0;
}

FUZZ_ENTRY(state)
