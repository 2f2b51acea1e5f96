#include "store.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define STORE_VERSION 1
#define AGG_KEY_MAX (1 + 4 + 2 + 2 + 65535 + 8)

struct dmp_store {
        rocksdb_t *db;
        rocksdb_options_t *opts;
        rocksdb_writeoptions_t *wopts;
        rocksdb_readoptions_t *ropts;
        rocksdb_writebatch_t *batch;
        unsigned char *keybuf;
};

static const char fp_key[] = "Gfingerprint";

static int set_err(char *errstr, size_t errstr_size, const char *what, char *err) {
        snprintf(errstr, errstr_size, "%s: %s", what, err);
        rocksdb_free(err);
        return -1;
}

dmp_store_t *dmp_store_open(const char *dir, uint64_t fingerprint, char *errstr,
                            size_t errstr_size) {
        dmp_store_t *st = dmp_calloc(1, sizeof(*st));
        char *err = NULL;
        st->opts = rocksdb_options_create();
        rocksdb_options_set_create_if_missing(st->opts, 1);
        /* LZ4 is cheap enough for a write-mostly store of small values. */
        rocksdb_options_set_compression(st->opts, rocksdb_lz4_compression);
        st->db = rocksdb_open(st->opts, dir, &err);
        if (err) {
                set_err(errstr, errstr_size, "cannot open the state store", err);
                dmp_store_close(st);
                return NULL;
        }
        st->wopts = rocksdb_writeoptions_create();
        st->ropts = rocksdb_readoptions_create();
        st->batch = rocksdb_writebatch_create();
        st->keybuf = dmp_malloc(AGG_KEY_MAX);

        size_t vlen;
        char *v = rocksdb_get(st->db, st->ropts, fp_key, sizeof(fp_key) - 1, &vlen, &err);
        if (err) {
                set_err(errstr, errstr_size, "cannot read the state store", err);
                dmp_store_close(st);
                return NULL;
        }
        unsigned char fp[8];
        dmp_be64_put(fp, fingerprint);
        if (v) {
                int same = vlen == 8 && !memcmp(v, fp, 8);
                rocksdb_free(v);
                if (!same) {
                        snprintf(errstr, errstr_size,
                                 "the state in %s was written by a different pipeline "
                                 "(input topic, measures or windows changed); use another "
                                 "[state] dir or remove it to start over", dir);
                        dmp_store_close(st);
                        return NULL;
                }
        } else {
                rocksdb_put(st->db, st->wopts, fp_key, sizeof(fp_key) - 1, (const char *)fp, 8,
                            &err);
                if (err) {
                        set_err(errstr, errstr_size, "cannot write the state store", err);
                        dmp_store_close(st);
                        return NULL;
                }
        }
        return st;
}

void dmp_store_close(dmp_store_t *st) {
        if (!st)
                return;
        if (st->db)
                rocksdb_close(st->db);
        if (st->batch)
                rocksdb_writebatch_destroy(st->batch);
        if (st->wopts)
                rocksdb_writeoptions_destroy(st->wopts);
        if (st->ropts)
                rocksdb_readoptions_destroy(st->ropts);
        if (st->opts)
                rocksdb_options_destroy(st->opts);
        free(st->keybuf);
        free(st);
}

static size_t meta_key(unsigned char *k, int32_t partition) {
        k[0] = 'M';
        dmp_be32_put(k + 1, (uint32_t)partition);
        return 5;
}

static size_t agg_key(unsigned char *k, int32_t partition, int win, const char *key,
                      size_t key_len, int64_t start) {
        k[0] = 'A';
        dmp_be32_put(k + 1, (uint32_t)partition);
        dmp_be16_put(k + 5, (uint16_t)win);
        dmp_be16_put(k + 7, (uint16_t)key_len);
        memcpy(k + 9, key, key_len);
        dmp_be64s_put(k + 9 + key_len, start);
        return 9 + key_len + 8;
}

int dmp_store_get_meta(dmp_store_t *st, int32_t partition, int64_t *next_offset,
                       int64_t *stream_time, char *errstr, size_t errstr_size) {
        unsigned char k[5];
        char *err = NULL;
        size_t vlen;
        char *v = rocksdb_get(st->db, st->ropts, (const char *)k, meta_key(k, partition), &vlen,
                              &err);
        if (err)
                return set_err(errstr, errstr_size, "cannot read partition metadata", err);
        if (!v)
                return 0;
        if (vlen != 17 || v[0] != STORE_VERSION) {
                rocksdb_free(v);
                snprintf(errstr, errstr_size, "partition %d: corrupt metadata", (int)partition);
                return -1;
        }
        memcpy(next_offset, v + 1, 8);
        memcpy(stream_time, v + 9, 8);
        rocksdb_free(v);
        return 1;
}

long dmp_store_scan(dmp_store_t *st, int32_t partition, dmp_store_entry_cb_t *cb, void *opaque,
                    char *errstr, size_t errstr_size) {
        unsigned char prefix[5];
        prefix[0] = 'A';
        dmp_be32_put(prefix + 1, (uint32_t)partition);
        rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ropts);
        long n = 0;
        for (rocksdb_iter_seek(it, (const char *)prefix, 5); rocksdb_iter_valid(it);
             rocksdb_iter_next(it)) {
                size_t kl, vl;
                const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &kl);
                const char *v = rocksdb_iter_value(it, &vl);
                if (kl < 5 || memcmp(k, prefix, 5))
                        break;
                size_t klen = kl >= 9 ? dmp_be16_get(k + 7) : 0;
                if (kl != 9 + klen + 8 ||
                    cb(opaque, dmp_be16_get(k + 5), (const char *)k + 9, klen,
                       dmp_be64s_get(k + 9 + klen), v, vl)) {
                        snprintf(errstr, errstr_size, "partition %d: corrupt state entry",
                                 (int)partition);
                        rocksdb_iter_destroy(it);
                        return -1;
                }
                n++;
        }
        char *err = NULL;
        rocksdb_iter_get_error(it, &err);
        rocksdb_iter_destroy(it);
        if (err)
                return set_err(errstr, errstr_size, "cannot scan the state store", err);
        return n;
}

void dmp_store_put_entry(dmp_store_t *st, int32_t partition, int win, const char *key,
                         size_t key_len, int64_t start, const void *val, size_t val_len) {
        size_t kl = agg_key(st->keybuf, partition, win, key, key_len, start);
        rocksdb_writebatch_put(st->batch, (const char *)st->keybuf, kl, val, val_len);
}

void dmp_store_delete_agg(dmp_store_t *st, int32_t partition, int win, const char *key,
                          size_t key_len, int64_t start) {
        size_t kl = agg_key(st->keybuf, partition, win, key, key_len, start);
        rocksdb_writebatch_delete(st->batch, (const char *)st->keybuf, kl);
}

void dmp_store_put_meta(dmp_store_t *st, int32_t partition, int64_t next_offset,
                        int64_t stream_time) {
        unsigned char k[5], v[17];
        v[0] = STORE_VERSION;
        memcpy(v + 1, &next_offset, 8);
        memcpy(v + 9, &stream_time, 8);
        rocksdb_writebatch_put(st->batch, (const char *)k, meta_key(k, partition),
                               (const char *)v, sizeof(v));
}

int dmp_store_commit(dmp_store_t *st, char *errstr, size_t errstr_size) {
        char *err = NULL;
        rocksdb_write(st->db, st->wopts, st->batch, &err);
        rocksdb_writebatch_clear(st->batch);
        if (err)
                return set_err(errstr, errstr_size, "cannot write state", err);
        return 0;
}
