/* The RocksDB state store. See store.h for the layout and contract. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define META_VERSION 1 /* of the partition metadata value */
#define AGG_KEY_MAX (4 + 2 + 2 + DMP_KEY_MAX + 8)
#define DEFAULT_MEM (8u << 20)

enum { CF_DEFAULT, CF_META, CF_WINDOWS, CF_GROUPS, CF__CNT };
static const char *const cf_names[CF__CNT] = {"default", "meta", "windows", "groups"};

struct dmp_store {
        rocksdb_t *db;
        rocksdb_options_t *opts;
        rocksdb_block_based_table_options_t *topts;
        rocksdb_cache_t *cache;
        rocksdb_column_family_handle_t *cf[CF__CNT];
        rocksdb_writeoptions_t *wopts;
        rocksdb_readoptions_t *ropts;
        rocksdb_writebatch_t *batch;
        unsigned char *keybuf;
        uint64_t fingerprint;
        int read_only;
        dmp_store_log_cb_t *log; /* the changelog hook, or NULL */
        void *log_opaque;

        /* The writer thread (dmp_store_commit_async). It owns `inflight`
         * while it is non-NULL; the processing thread owns `batch` and
         * `spare`. Protected by mu: inflight, werr, stop. */
        int writer_started;
        pthread_t writer;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        rocksdb_writebatch_t *inflight; /* being written; NULL: idle */
        rocksdb_writebatch_t *spare;    /* the other batch, empty */
        char *werr;                     /* the failed write's error (RocksDB's), until reported */
        int stop;
};

static const char fp_key[] = "F", layout_key[] = "L";
static const char old_fp_key[] = "Gfingerprint"; /* layout 1, default family */

static int set_err(char *errstr, size_t errstr_size, const char *what, char *err) {
        snprintf(errstr, errstr_size, "%s: %s", what, err);
        rocksdb_free(err);
        return -1;
}

/* Options for this workload: small values written in sorted batches once
 * per commit, read back by prefix scans when a partition opens and by
 * point gets when an evicted entry is touched again.
 *  - level compaction with dynamic level sizes: bounded space amplification
 *    (deleted windows are compacted away), predictable read cost;
 *  - LZ4 on the upper levels (cheap to compress at the write rate), ZSTD on
 *    the bottommost level (most of the data, rarely rewritten); Debian's
 *    librocksdb 7.8 links both (plus snappy, zlib, bz2);
 *  - full bloom filters (10 bits/key, ~1 % false positives) so that a get
 *    of a key that was never stored (the common case on a cache miss of a
 *    new window) skips the SST files;
 *  - one LRU block cache of a fixed size holding data, index and filter
 *    blocks (cache_index_and_filter_blocks), so that RocksDB's reader
 *    memory is inside the budget;
 *  - memtables bounded by db_write_buffer_size over all families. The C API
 *    of RocksDB 7.8 has no WriteBufferManager constructor, so memtables
 *    cannot be charged to the block cache: they get their own share of the
 *    budget, which db_write_buffer_size enforces (a flush starts when all
 *    memtables together exceed it), and their size is accounted
 *    separately (dmp_store_mem_usage). */
static void configure(dmp_store_t *st, const dmp_store_opts_t *o) {
        size_t cache = o && o->block_cache_bytes ? o->block_cache_bytes : DEFAULT_MEM;
        size_t mem = o && o->memtable_bytes ? o->memtable_bytes : DEFAULT_MEM;
        rocksdb_options_t *opts = st->opts;
        rocksdb_options_set_create_if_missing(opts, !st->read_only);
        rocksdb_options_set_create_missing_column_families(opts, !st->read_only);
        rocksdb_options_set_compaction_style(opts, rocksdb_level_compaction);
        rocksdb_options_set_level_compaction_dynamic_level_bytes(opts, 1);
        rocksdb_options_set_compression(opts, rocksdb_lz4_compression);
        rocksdb_options_set_bottommost_compression(opts, rocksdb_zstd_compression);
        rocksdb_options_set_db_write_buffer_size(opts, mem);
        /* Buffers of mem/2: nearly all writes go to "windows"; the db-wide
         * limit flushes when all memtables together pass mem, so a buffer
         * being flushed and a new one can hold up to 1.5 x mem briefly.
         * Smaller buffers flush and compact more, on the same 2 cores as
         * the processing (docs/PERFORMANCE.md "Tried and not kept"). */
        size_t wb = mem / 2 < (64u << 10) ? (64u << 10) : mem / 2;
        rocksdb_options_set_write_buffer_size(opts, wb);
        rocksdb_options_set_max_write_buffer_number(opts, 2);
        rocksdb_options_set_max_open_files(opts, 256);
        rocksdb_options_set_keep_log_file_num(opts, 3);
        rocksdb_options_set_max_log_file_size(opts, 4u << 20);
        st->topts = rocksdb_block_based_options_create();
        st->cache = rocksdb_cache_create_lru(cache);
        rocksdb_block_based_options_set_block_cache(st->topts, st->cache);
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(st->topts, 1);
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(st->topts, 1);
        /* The table options take ownership of the policy. */
        rocksdb_block_based_options_set_filter_policy(st->topts,
                                                      rocksdb_filterpolicy_create_bloom_full(10));
        rocksdb_block_based_options_set_format_version(st->topts, 5);
        rocksdb_options_set_block_based_table_factory(opts, st->topts);
}

/* ---- the writer thread ----
 * Writing a commit's batch (a WAL append and a memtable insert per entry)
 * stopped the processing thread for tens of ms (docs/STATE.md "Crash
 * consistency"), so the processing thread hands the batch over and goes on;
 * the next commit, and every read, first waits for it (wait_idle), so reads
 * see every commit that was handed over and commits land in order, each
 * atomically. */

/* dmp_store_fault_sim's count of writes left to fail. */
static atomic_int fault_writes;

void dmp_store_fault_sim(int n) {
        atomic_store(&fault_writes, n);
}

/* Whether this write is one dmp_store_fault_sim asked to fail. */
static int fault_due(void) {
        int n = atomic_load(&fault_writes);
        while (n > 0 && !atomic_compare_exchange_weak(&fault_writes, &n, n - 1))
                ;
        return n > 0;
}

static void *writer_main(void *arg) {
        dmp_store_t *st = arg;
        pthread_setname_np(pthread_self(), "dmp:writer"); /* in top, perf, gdb */
        pthread_mutex_lock(&st->mu);
        for (;;) {
                while (!st->inflight && !st->stop)
                        pthread_cond_wait(&st->cv, &st->mu);
                if (!st->inflight)
                        break; /* stop, and nothing left to write */
                rocksdb_writebatch_t *b = st->inflight;
                pthread_mutex_unlock(&st->mu);
                char *err = NULL;
                if (fault_due()) /* (rocksdb_free is free) */
                        err = strdup("injected fault (dmp_store_fault_sim)");
                else
                        rocksdb_write(st->db, st->wopts, b, &err);
                rocksdb_writebatch_clear(b);
                pthread_mutex_lock(&st->mu);
                if (err && !st->werr)
                        st->werr = err;
                else if (err)
                        rocksdb_free(err);
                st->inflight = NULL;
                pthread_cond_broadcast(&st->cv);
        }
        pthread_mutex_unlock(&st->mu);
        return NULL;
}

/* Waits until no write is in flight; returns its error (to be freed with
 * rocksdb_free) if it failed and that was not reported yet. */
static char *wait_idle(dmp_store_t *st) {
        if (!st->writer_started)
                return NULL;
        pthread_mutex_lock(&st->mu);
        while (st->inflight)
                pthread_cond_wait(&st->cv, &st->mu);
        char *err = st->werr;
        st->werr = NULL;
        pthread_mutex_unlock(&st->mu);
        return err;
}

/* For readers: waits, keeping a write error for the next commit to report. */
static void wait_for_reads(dmp_store_t *st) {
        if (!st->writer_started)
                return;
        pthread_mutex_lock(&st->mu);
        while (st->inflight)
                pthread_cond_wait(&st->cv, &st->mu);
        pthread_mutex_unlock(&st->mu);
}

static char *get_cf(dmp_store_t *st, int cf, const void *k, size_t kl, size_t *vl, char **err) {
        wait_for_reads(st);
        return rocksdb_get_cf(st->db, st->ropts, st->cf[cf], k, kl, vl, err);
}

/* Whether the default family holds anything (layout 1 or a foreign store). */
static int default_is_empty(dmp_store_t *st) {
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ropts, st->cf[CF_DEFAULT]);
        rocksdb_iter_seek_to_first(it);
        int empty = !rocksdb_iter_valid(it);
        rocksdb_iter_destroy(it);
        return empty;
}

/* Layout 1 -> 2 in one atomic batch: 'M' p -> meta 'P' p, 'A' rest ->
 * windows rest, then the default family is emptied by a range deletion. */
static int migrate_layout1(dmp_store_t *st, char *errstr, size_t errstr_size) {
        rocksdb_writebatch_t *b = rocksdb_writebatch_create();
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ropts, st->cf[CF_DEFAULT]);
        long moved = 0;
        for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
                size_t kl, vl;
                const char *k = rocksdb_iter_key(it, &kl);
                const char *v = rocksdb_iter_value(it, &vl);
                if (kl == 5 && k[0] == 'M') {
                        char nk[5] = {'P', k[1], k[2], k[3], k[4]};
                        rocksdb_writebatch_put_cf(b, st->cf[CF_META], nk, 5, v, vl);
                } else if (kl > 1 && k[0] == 'A') {
                        rocksdb_writebatch_put_cf(b, st->cf[CF_WINDOWS], k + 1, kl - 1, v, vl);
                } else {
                        continue;
                }
                moved++;
        }
        rocksdb_iter_destroy(it);
        unsigned char fp[8], layout = DMP_STORE_LAYOUT;
        dmp_be64_put(fp, st->fingerprint);
        rocksdb_writebatch_put_cf(b, st->cf[CF_META], fp_key, 1, (const char *)fp, 8);
        rocksdb_writebatch_put_cf(b, st->cf[CF_META], layout_key, 1, (const char *)&layout, 1);
        rocksdb_writebatch_delete_range_cf(b, st->cf[CF_DEFAULT], "", 0, "\xff\xff", 2);
        char *err = NULL;
        rocksdb_write(st->db, st->wopts, b, &err);
        rocksdb_writebatch_destroy(b);
        if (err)
                return set_err(errstr, errstr_size, "cannot migrate the state store", err);
        dmp_info("migrated %ld state records to store layout %d", moved, DMP_STORE_LAYOUT);
        return 0;
}

static int fingerprint_mismatch(const char *dir, char *errstr, size_t errstr_size) {
        snprintf(errstr, errstr_size,
                 "the state in %s was written by a different pipeline "
                 "(input topic, measures or windows changed); use another "
                 "[state] dir or remove it to start over", dir);
        return -1;
}

/* Checks (or, for a new store, writes) the fingerprint and layout. */
static int check_identity(dmp_store_t *st, const char *dir, uint64_t fingerprint,
                          char *errstr, size_t errstr_size) {
        char *err = NULL;
        size_t vl;
        char *v = get_cf(st, CF_META, fp_key, 1, &vl, &err);
        if (err)
                return set_err(errstr, errstr_size, "cannot read the state store", err);
        if (v) {
                int ok = vl == 8;
                if (ok)
                        st->fingerprint = dmp_be64_get((const unsigned char *)v);
                rocksdb_free(v);
                char *l = get_cf(st, CF_META, layout_key, 1, &vl, &err);
                if (err)
                        return set_err(errstr, errstr_size, "cannot read the state store", err);
                int layout = l && vl == 1 ? (unsigned char)l[0] : -1;
                rocksdb_free(l);
                if (!ok || layout != DMP_STORE_LAYOUT) {
                        snprintf(errstr, errstr_size,
                                 "%s: state store layout %d is not supported (this dmpflow "
                                 "reads layout %d)", dir, layout, DMP_STORE_LAYOUT);
                        return -1;
                }
                if (fingerprint && st->fingerprint != fingerprint)
                        return fingerprint_mismatch(dir, errstr, errstr_size);
                return 0;
        }
        /* No layout-2 identity: layout 1, foreign, or new. */
        v = get_cf(st, CF_DEFAULT, old_fp_key, sizeof(old_fp_key) - 1, &vl, &err);
        if (err)
                return set_err(errstr, errstr_size, "cannot read the state store", err);
        if (v) {
                uint64_t old = vl == 8 ? dmp_be64_get((const unsigned char *)v) : 0;
                rocksdb_free(v);
                if (st->read_only) {
                        snprintf(errstr, errstr_size,
                                 "%s holds state of store layout 1; run this dmpflow on it once "
                                 "(dmpflow run) to migrate it to layout %d", dir,
                                 DMP_STORE_LAYOUT);
                        return -1;
                }
                if (old != fingerprint)
                        return fingerprint_mismatch(dir, errstr, errstr_size);
                st->fingerprint = fingerprint;
                return migrate_layout1(st, errstr, errstr_size);
        }
        if (st->read_only || !default_is_empty(st)) {
                snprintf(errstr, errstr_size, "%s is not a dmpflow state store%s", dir,
                         st->read_only ? " (no fingerprint)" : " (unknown records)");
                return -1;
        }
        unsigned char fp[8], layout = DMP_STORE_LAYOUT;
        dmp_be64_put(fp, fingerprint);
        rocksdb_writebatch_t *b = rocksdb_writebatch_create();
        rocksdb_writebatch_put_cf(b, st->cf[CF_META], fp_key, 1, (const char *)fp, 8);
        rocksdb_writebatch_put_cf(b, st->cf[CF_META], layout_key, 1, (const char *)&layout, 1);
        rocksdb_write(st->db, st->wopts, b, &err);
        rocksdb_writebatch_destroy(b);
        if (err)
                return set_err(errstr, errstr_size, "cannot write the state store", err);
        st->fingerprint = fingerprint;
        return 0;
}

/* The process holding dir's RocksDB lock (an fcntl lock on dir/LOCK), or
 * 0. See dmp_store_probe: never on a store this process holds. */
static int lock_holder(const char *dir) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/LOCK", dir);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        int pid = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK ? (int)fl.l_pid : 0;
        close(fd);
        return pid;
}

/* mkdir -p dir (RocksDB creates the last component only). */
static void make_parents(const char *dir) {
        char path[4096];
        snprintf(path, sizeof(path), "%s", dir);
        for (char *s = path + 1; *s; s++)
                if (*s == '/') {
                        *s = '\0';
                        mkdir(path, 0755); /* (EEXIST and the rest: open reports) */
                        *s = '/';
                }
}

int dmp_store_probe(const char *dir, uint64_t fingerprint, int *lock_pid, char *errstr,
                    size_t errstr_size) {
        *lock_pid = 0;
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof(path), "%s", *dir ? dir : ".");
        while (stat(path, &sb)) { /* the nearest part of it that exists */
                char *slash = strrchr(path, '/');
                if (errno != ENOENT && errno != ENOTDIR) {
                        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                        return -1;
                }
                if (slash == path)
                        slash[1] = '\0';
                else if (slash)
                        *slash = '\0';
                else
                        snprintf(path, sizeof(path), ".");
        }
        int there = !strcmp(path, *dir ? dir : ".");
        if (!S_ISDIR(sb.st_mode)) {
                snprintf(errstr, errstr_size, there ? "%s is not a directory"
                                                    : "cannot create %2$s: %1$s is not a directory",
                         path, dir);
                return -1;
        }
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s/.dmpflow-check-XXXXXX", path);
        int fd = mkstemp(tmp);
        if (fd < 0) {
                snprintf(errstr, errstr_size, there ? "%s is not writable: %s"
                                                    : "cannot create %3$s: %1$s is not writable: %2$s",
                         path, strerror(errno), dir);
                return -1;
        }
        close(fd);
        unlink(tmp);
        if (!there)
                return 0; /* run creates it */
        *lock_pid = lock_holder(dir);
        /* A store there (its families list): is it this pipeline's? */
        char *err = NULL;
        size_t n = 0;
        rocksdb_options_t *opts = rocksdb_options_create();
        char **names = rocksdb_list_column_families(opts, dir, &n, &err);
        int meta = 0;
        for (size_t i = 0; !err && i < n; i++)
                meta |= !strcmp(names[i], cf_names[CF_META]);
        if (names)
                rocksdb_list_column_families_destroy(names, n);
        rocksdb_free(err);
        rocksdb_options_destroy(opts);
        if (!meta) /* none, or layout 1, or not dmpflow's: run's to say */
                return 0;
        dmp_store_opts_t ro = {.read_only = 1};
        dmp_store_t *st = dmp_store_open_opts(dir, fingerprint, &ro, errstr, errstr_size);
        if (!st)
                return -1;
        dmp_store_close(st);
        return 0;
}

dmp_store_t *dmp_store_open(const char *dir, uint64_t fingerprint, char *errstr,
                            size_t errstr_size) {
        return dmp_store_open_opts(dir, fingerprint, NULL, errstr, errstr_size);
}

dmp_store_t *dmp_store_open_opts(const char *dir, uint64_t fingerprint,
                                 const dmp_store_opts_t *o, char *errstr, size_t errstr_size) {
        dmp_store_t *st = dmp_calloc(1, sizeof(*st));
        char *err = NULL;
        st->read_only = o && o->read_only;
        st->opts = rocksdb_options_create();
        configure(st, o);
        st->wopts = rocksdb_writeoptions_create();
        st->ropts = rocksdb_readoptions_create();
        st->batch = rocksdb_writebatch_create();
        st->keybuf = dmp_malloc(AGG_KEY_MAX);

        const rocksdb_options_t *cf_opts[CF__CNT];
        for (int i = 0; i < CF__CNT; i++)
                cf_opts[i] = st->opts;
        if (st->read_only) {
                /* Only the families that exist can be opened read-only. */
                size_t n = 0;
                char **names = rocksdb_list_column_families(st->opts, dir, &n, &err);
                if (err) {
                        rocksdb_free(err);
                        if (names) /* RocksDB 7.8 returns an empty array on errors too */
                                rocksdb_list_column_families_destroy(names, n);
                        snprintf(errstr, errstr_size, "no dmpflow state store in %s", dir);
                        goto fail;
                }
                int have = 0;
                for (size_t i = 0; i < n; i++)
                        for (int c = CF_META; c < CF__CNT; c++)
                                have += !strcmp(names[i], cf_names[c]);
                rocksdb_list_column_families_destroy(names, n);
                if (have != CF__CNT - 1) {
                        st->db = rocksdb_open_for_read_only_column_families(
                                st->opts, dir, 1, cf_names, cf_opts, st->cf, 0, &err);
                        if (err) {
                                set_err(errstr, errstr_size, "cannot open the state store", err);
                                goto fail;
                        }
                        /* layout 1 or foreign: check_identity explains which */
                        char *v = rocksdb_get_cf(st->db, st->ropts, st->cf[CF_DEFAULT],
                                                 old_fp_key, sizeof(old_fp_key) - 1, &n, &err);
                        rocksdb_free(err);
                        snprintf(errstr, errstr_size,
                                 v ? "%s holds state of store layout 1; run this dmpflow on it "
                                     "once (dmpflow run) to migrate it"
                                   : "%s is not a dmpflow state store (no meta column family)",
                                 dir);
                        rocksdb_free(v);
                        goto fail;
                }
                st->db = rocksdb_open_for_read_only_column_families(st->opts, dir, CF__CNT,
                                                                    cf_names, cf_opts, st->cf,
                                                                    0, &err);
        } else {
                make_parents(dir);
                st->db = rocksdb_open_column_families(st->opts, dir, CF__CNT, cf_names, cf_opts,
                                                      st->cf, &err);
        }
        int holder;
        /* (not when this process holds it: see lock_holder) */
        if (err && !st->read_only && !strstr(err, "current process") &&
            (holder = lock_holder(dir)) > 0) {
                rocksdb_free(err);
                snprintf(errstr, errstr_size, "the state directory %s is in use by process %d "
                         "(another dmpflow with the same [state] dir?)", dir, holder);
                goto fail;
        }
        if (err) {
                set_err(errstr, errstr_size, "cannot open the state store", err);
                goto fail;
        }
        if (check_identity(st, dir, fingerprint, errstr, errstr_size))
                goto fail;
        if (!st->read_only) {
                st->spare = rocksdb_writebatch_create();
                pthread_mutex_init(&st->mu, NULL);
                pthread_cond_init(&st->cv, NULL);
                if (pthread_create(&st->writer, NULL, writer_main, st)) {
                        snprintf(errstr, errstr_size, "cannot start the state writer thread");
                        pthread_mutex_destroy(&st->mu);
                        pthread_cond_destroy(&st->cv);
                        goto fail;
                }
                st->writer_started = 1;
        }
        return st;
fail:
        dmp_store_close(st);
        return NULL;
}

void dmp_store_close(dmp_store_t *st) {
        if (!st)
                return;
        if (st->writer_started) { /* the write in flight lands first */
                pthread_mutex_lock(&st->mu);
                st->stop = 1;
                pthread_cond_broadcast(&st->cv);
                pthread_mutex_unlock(&st->mu);
                pthread_join(st->writer, NULL);
                if (st->werr) {
                        dmp_error("state store: the last commit failed: %s", st->werr);
                        rocksdb_free(st->werr);
                }
                pthread_mutex_destroy(&st->mu);
                pthread_cond_destroy(&st->cv);
        }
        if (st->spare)
                rocksdb_writebatch_destroy(st->spare);
        for (int i = 0; i < CF__CNT; i++)
                if (st->cf[i])
                        rocksdb_column_family_handle_destroy(st->cf[i]);
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
        if (st->topts)
                rocksdb_block_based_options_destroy(st->topts);
        if (st->cache)
                rocksdb_cache_destroy(st->cache);
        free(st->keybuf);
        free(st);
}

uint64_t dmp_store_fingerprint(const dmp_store_t *st) {
        return st->fingerprint;
}

static size_t meta_key(unsigned char *k, int32_t partition) {
        k[0] = 'P';
        dmp_be32_put(k + 1, (uint32_t)partition);
        return 5;
}

static size_t checkpoint_key(unsigned char *k, int32_t partition) {
        k[0] = 'C';
        dmp_be32_put(k + 1, (uint32_t)partition);
        return 5;
}

/* The batch operations, logged for partitions >= 0 when a hook is set. */
static void batch_put(dmp_store_t *st, int cf, int32_t partition, const void *k, size_t kl,
                      const void *v, size_t vl) {
        rocksdb_writebatch_put_cf(st->batch, st->cf[cf], k, kl, v, vl);
        if (st->log && partition >= 0)
                st->log(st->log_opaque, partition,
                        cf == CF_META ? DMP_STORE_FAMILY_META
                        : cf == CF_WINDOWS ? DMP_STORE_FAMILY_WINDOWS : DMP_STORE_FAMILY_GROUPS,
                        k, kl, v, vl);
}

static void batch_delete(dmp_store_t *st, int cf, int32_t partition, const void *k, size_t kl) {
        rocksdb_writebatch_delete_cf(st->batch, st->cf[cf], k, kl);
        if (st->log && partition >= 0)
                st->log(st->log_opaque, partition,
                        cf == CF_META ? DMP_STORE_FAMILY_META
                        : cf == CF_WINDOWS ? DMP_STORE_FAMILY_WINDOWS : DMP_STORE_FAMILY_GROUPS,
                        k, kl, NULL, 0);
}

static size_t agg_key(unsigned char *k, int32_t partition, int win, const char *key,
                      size_t key_len, int64_t start) {
        if (key_len > UINT16_MAX) /* as the engine cuts keys (a longer query key) */
                key_len = UINT16_MAX;
        dmp_be32_put(k, (uint32_t)partition);
        dmp_be16_put(k + 4, (uint16_t)win);
        dmp_be16_put(k + 6, (uint16_t)key_len);
        memcpy(k + 8, key, key_len);
        dmp_be64s_put(k + 8 + key_len, start);
        return 8 + key_len + 8;
}

int dmp_store_get_meta(dmp_store_t *st, int32_t partition, int64_t *next_offset,
                       int64_t *stream_time, char *errstr, size_t errstr_size) {
        unsigned char k[5];
        char *err = NULL;
        size_t vlen;
        char *v = get_cf(st, CF_META, k, meta_key(k, partition), &vlen, &err);
        if (err)
                return set_err(errstr, errstr_size, "cannot read partition metadata", err);
        if (!v)
                return 0;
        if (vlen != 17 || v[0] != META_VERSION) {
                rocksdb_free(v);
                snprintf(errstr, errstr_size, "partition %d: corrupt metadata", (int)partition);
                return -1;
        }
        memcpy(next_offset, v + 1, 8);
        memcpy(stream_time, v + 9, 8);
        rocksdb_free(v);
        return 1;
}

/* Iterates the keys of family cf in [lo, hi) (hi_len 0: to the end):
 * cb(opaque, key, klen, val, vlen) returns 0 to go on, -1 to fail (then
 * errstr gets `corrupt`). Returns the count or -1. */
typedef int(range_cb_t)(void *opaque, const unsigned char *k, size_t kl, const char *v,
                        size_t vl);
static long scan_range(dmp_store_t *st, int cf, const void *lo, size_t lo_len, const void *hi,
                       size_t hi_len, range_cb_t *cb, void *opaque, const char *corrupt,
                       char *errstr, size_t errstr_size) {
        wait_for_reads(st);
        rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
        if (hi_len)
                rocksdb_readoptions_set_iterate_upper_bound(ro, hi, hi_len);
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, ro, st->cf[cf]);
        long n = 0;
        for (rocksdb_iter_seek(it, lo, lo_len); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
                size_t kl, vl;
                const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &kl);
                const char *v = rocksdb_iter_value(it, &vl);
                if (cb(opaque, k, kl, v, vl)) {
                        snprintf(errstr, errstr_size, "%s", corrupt);
                        n = -1;
                        break;
                }
                n++;
        }
        char *err = NULL;
        rocksdb_iter_get_error(it, &err);
        rocksdb_iter_destroy(it);
        rocksdb_readoptions_destroy(ro);
        if (err)
                return set_err(errstr, errstr_size, "cannot scan the state store", err);
        return n;
}

typedef struct entry_scan {
        dmp_store_entry_cb_t *cb;
        void *opaque;
} entry_scan_t;

static int entry_row(void *opaque, const unsigned char *k, size_t kl, const char *v,
                     size_t vl) {
        entry_scan_t *es = opaque;
        size_t klen = kl >= 8 ? dmp_be16_get(k + 6) : 0;
        if (kl != 8 + klen + 8)
                return -1;
        return es->cb(es->opaque, dmp_be16_get(k + 4), (const char *)k + 8, klen,
                      dmp_be64s_get(k + 8 + klen), v, vl);
}

/* [lo, hi) of a partition's keys; partitions are >= 0, so p + 1 fits. */
static void partition_bounds(unsigned char lo[4], unsigned char hi[4], int32_t partition) {
        dmp_be32_put(lo, (uint32_t)partition);
        dmp_be32_put(hi, (uint32_t)partition + 1);
}

/* scan_range over one partition's keys of family cf; `what` names a row
 * in the corruption message. */
static long scan_partition(dmp_store_t *st, int cf, int32_t partition, const char *what,
                           range_cb_t *cb, void *opaque, char *errstr, size_t errstr_size) {
        unsigned char lo[4], hi[4];
        char corrupt[64];
        partition_bounds(lo, hi, partition);
        snprintf(corrupt, sizeof(corrupt), "partition %d: corrupt %s", (int)partition, what);
        return scan_range(st, cf, lo, 4, hi, 4, cb, opaque, corrupt, errstr, errstr_size);
}

long dmp_store_scan(dmp_store_t *st, int32_t partition, dmp_store_entry_cb_t *cb, void *opaque,
                    char *errstr, size_t errstr_size) {
        entry_scan_t es = {cb, opaque};
        return scan_partition(st, CF_WINDOWS, partition, "state entry", entry_row, &es, errstr,
                              errstr_size);
}

long dmp_store_scan_key(dmp_store_t *st, int32_t partition, int win, const char *key,
                        size_t key_len, dmp_store_entry_cb_t *cb, void *opaque, char *errstr,
                        size_t errstr_size) {
        char corrupt[64];
        snprintf(corrupt, sizeof(corrupt), "partition %d: corrupt state entry", (int)partition);
        entry_scan_t es = {cb, opaque};
        /* [key at INT64_MIN, key at INT64_MAX + one 0 byte): all its starts */
        unsigned char lo[AGG_KEY_MAX], hi[AGG_KEY_MAX + 1];
        size_t l = agg_key(lo, partition, win, key, key_len, INT64_MIN);
        agg_key(hi, partition, win, key, key_len, INT64_MAX);
        hi[l] = 0;
        return scan_range(st, CF_WINDOWS, lo, l, hi, l + 1, entry_row, &es, corrupt, errstr,
                          errstr_size);
}

int dmp_store_get_entry(dmp_store_t *st, int32_t partition, int win, const char *key,
                        size_t key_len, int64_t start, void **val, size_t *val_len,
                        char *errstr, size_t errstr_size) {
        char *err = NULL;
        size_t kl = agg_key(st->keybuf, partition, win, key, key_len, start);
        char *v = get_cf(st, CF_WINDOWS, st->keybuf, kl, val_len, &err);
        if (err)
                return set_err(errstr, errstr_size, "cannot read state", err);
        if (!v)
                return 0;
        *val = dmp_malloc(*val_len ? *val_len : 1);
        memcpy(*val, v, *val_len);
        rocksdb_free(v);
        return 1;
}

typedef struct part_scan {
        void (*cb)(void *opaque, int32_t partition);
        void *opaque;
} part_scan_t;

static int part_row(void *opaque, const unsigned char *k, size_t kl, const char *v,
                    size_t vl) {
        part_scan_t *ps = opaque;
        if (kl != 5)
                return -1;
        ps->cb(ps->opaque, (int32_t)dmp_be32_get(k + 1));
        return 0;
}

long dmp_store_partitions(dmp_store_t *st, void (*cb)(void *opaque, int32_t partition),
                          void *opaque, char *errstr, size_t errstr_size) {
        part_scan_t ps = {cb, opaque};
        return scan_range(st, CF_META, "P", 1, "Q", 1, part_row, &ps, "corrupt metadata key",
                          errstr, errstr_size);
}

typedef struct group_scan {
        dmp_store_group_cb_t *cb;
        void *opaque;
} group_scan_t;

static int group_row(void *opaque, const unsigned char *k, size_t kl, const char *v,
                     size_t vl) {
        group_scan_t *gs = opaque;
        return gs->cb(gs->opaque, (const char *)k + 4, kl - 4, v, vl);
}

long dmp_store_scan_groups(dmp_store_t *st, int32_t partition, dmp_store_group_cb_t *cb,
                           void *opaque, char *errstr, size_t errstr_size) {
        group_scan_t gs = {cb, opaque};
        return scan_partition(st, CF_GROUPS, partition, "group entry", group_row, &gs, errstr,
                              errstr_size);
}

void dmp_store_put_entry(dmp_store_t *st, int32_t partition, int win, const char *key,
                         size_t key_len, int64_t start, const void *val, size_t val_len) {
        size_t kl = agg_key(st->keybuf, partition, win, key, key_len, start);
        batch_put(st, CF_WINDOWS, partition, st->keybuf, kl, val, val_len);
}

void dmp_store_delete_agg(dmp_store_t *st, int32_t partition, int win, const char *key,
                          size_t key_len, int64_t start) {
        size_t kl = agg_key(st->keybuf, partition, win, key, key_len, start);
        batch_delete(st, CF_WINDOWS, partition, st->keybuf, kl);
}

void dmp_store_put_meta(dmp_store_t *st, int32_t partition, int64_t next_offset,
                        int64_t stream_time) {
        unsigned char k[5], v[17];
        v[0] = META_VERSION;
        memcpy(v + 1, &next_offset, 8);
        memcpy(v + 9, &stream_time, 8);
        batch_put(st, CF_META, partition, k, meta_key(k, partition), v, sizeof(v));
}

static size_t group_key(unsigned char *k, int32_t partition, const char *key, size_t key_len) {
        if (key_len > AGG_KEY_MAX - 4)
                key_len = AGG_KEY_MAX - 4;
        dmp_be32_put(k, (uint32_t)partition);
        memcpy(k + 4, key, key_len);
        return 4 + key_len;
}

void dmp_store_put_group(dmp_store_t *st, int32_t partition, const char *key, size_t key_len,
                         const void *val, size_t val_len) {
        size_t kl = group_key(st->keybuf, partition, key, key_len);
        batch_put(st, CF_GROUPS, partition, st->keybuf, kl, val, val_len);
}

void dmp_store_delete_group(dmp_store_t *st, int32_t partition, const char *key,
                            size_t key_len) {
        size_t kl = group_key(st->keybuf, partition, key, key_len);
        batch_delete(st, CF_GROUPS, partition, st->keybuf, kl);
}

void dmp_store_drop_partition(dmp_store_t *st, int32_t partition) {
        unsigned char lo[4], hi[4], mk[5];
        partition_bounds(lo, hi, partition);
        rocksdb_writebatch_delete_range_cf(st->batch, st->cf[CF_WINDOWS], (const char *)lo, 4,
                                           (const char *)hi, 4);
        rocksdb_writebatch_delete_range_cf(st->batch, st->cf[CF_GROUPS], (const char *)lo, 4,
                                           (const char *)hi, 4);
        rocksdb_writebatch_delete_cf(st->batch, st->cf[CF_META], (const char *)mk,
                                     meta_key(mk, partition));
        rocksdb_writebatch_delete_cf(st->batch, st->cf[CF_META], (const char *)mk,
                                     checkpoint_key(mk, partition));
}

void dmp_store_set_log(dmp_store_t *st, dmp_store_log_cb_t *cb, void *opaque) {
        st->log = cb;
        st->log_opaque = opaque;
}

int dmp_store_apply_logged(dmp_store_t *st, int32_t partition, int family, const void *key,
                           size_t key_len, const void *val, size_t val_len, char *errstr,
                           size_t errstr_size) {
        const unsigned char *k = key;
        int cf = family == DMP_STORE_FAMILY_META      ? CF_META
                 : family == DMP_STORE_FAMILY_WINDOWS ? CF_WINDOWS
                 : family == DMP_STORE_FAMILY_GROUPS  ? CF_GROUPS
                                                      : -1;
        /* meta: 'P' p; windows, groups: p first (store.h) */
        int ok = cf == CF_META ? key_len == 5 && k[0] == 'P' &&
                                         dmp_be32_get(k + 1) == (uint32_t)partition
                               : cf > 0 && key_len >= 4 && dmp_be32_get(k) == (uint32_t)partition;
        if (!ok) {
                snprintf(errstr, errstr_size, "partition %d: a changelog record of family "
                         "0x%02x with a key of %zu bytes is not this partition's state",
                         (int)partition, family & 0xff, key_len);
                return -1;
        }
        if (val)
                rocksdb_writebatch_put_cf(st->batch, st->cf[cf], key, key_len, val, val_len);
        else
                rocksdb_writebatch_delete_cf(st->batch, st->cf[cf], key, key_len);
        return 0;
}

typedef struct replay {
        dmp_store_log_cb_t *cb;
        void *opaque;
        int32_t partition;
        int family;
} replay_t;

static int replay_row(void *opaque, const unsigned char *k, size_t kl, const char *v,
                      size_t vl) {
        replay_t *r = opaque;
        r->cb(r->opaque, r->partition, r->family, k, kl, v, vl);
        return 0;
}

long dmp_store_replay(dmp_store_t *st, int32_t partition, dmp_store_log_cb_t *cb, void *opaque,
                      char *errstr, size_t errstr_size) {
        unsigned char mk[5], mk_hi[5];
        replay_t r = {cb, opaque, partition, DMP_STORE_FAMILY_META};
        meta_key(mk, partition);
        meta_key(mk_hi, partition + 1); /* [P p, P p+1): its one key (p >= 0) */
        long n = scan_range(st, CF_META, mk, 5, mk_hi, 5, replay_row, &r, "", errstr, errstr_size);
        r.family = DMP_STORE_FAMILY_WINDOWS;
        long w = n < 0 ? -1 : scan_partition(st, CF_WINDOWS, partition, "entry", replay_row, &r,
                                              errstr, errstr_size);
        r.family = DMP_STORE_FAMILY_GROUPS;
        long g = w < 0 ? -1 : scan_partition(st, CF_GROUPS, partition, "group entry", replay_row,
                                              &r, errstr, errstr_size);
        return g < 0 ? -1 : n + w + g;
}

int dmp_store_get_checkpoint(dmp_store_t *st, int32_t partition, int64_t *offset,
                             char *errstr, size_t errstr_size) {
        unsigned char k[5];
        char *err = NULL;
        size_t vlen;
        char *v = get_cf(st, CF_META, k, checkpoint_key(k, partition), &vlen, &err);
        if (err)
                return set_err(errstr, errstr_size, "cannot read the changelog checkpoint", err);
        if (!v)
                return 0;
        int ok = vlen == 8;
        if (ok)
                memcpy(offset, v, 8);
        rocksdb_free(v);
        if (!ok) {
                snprintf(errstr, errstr_size, "partition %d: corrupt changelog checkpoint",
                         (int)partition);
                return -1;
        }
        return 1;
}

void dmp_store_put_checkpoint(dmp_store_t *st, int32_t partition, int64_t offset) {
        unsigned char k[5];
        rocksdb_writebatch_put_cf(st->batch, st->cf[CF_META], (const char *)k,
                                  checkpoint_key(k, partition), (const char *)&offset, 8);
}

void dmp_store_discard(dmp_store_t *st) {
        rocksdb_writebatch_clear(st->batch);
}

size_t dmp_store_pending(const dmp_store_t *st) {
        return (size_t)rocksdb_writebatch_count(st->batch);
}

int dmp_store_commit(dmp_store_t *st, char *errstr, size_t errstr_size) {
        if (dmp_store_commit_async(st, errstr, errstr_size))
                return -1;
        return dmp_store_sync(st, errstr, errstr_size);
}

int dmp_store_commit_async(dmp_store_t *st, char *errstr, size_t errstr_size) {
        char *err = wait_idle(st);
        if (err) {
                rocksdb_writebatch_clear(st->batch);
                return set_err(errstr, errstr_size, "cannot write state", err);
        }
        if (!st->writer_started) { /* read-only: RocksDB refuses the write */
                rocksdb_write(st->db, st->wopts, st->batch, &err);
                rocksdb_writebatch_clear(st->batch);
                return err ? set_err(errstr, errstr_size, "cannot write state", err) : 0;
        }
        if (!rocksdb_writebatch_count(st->batch))
                return 0;
        rocksdb_writebatch_t *handed = st->batch;
        st->batch = st->spare;
        st->spare = handed; /* empty again when the writer is done with it */
        pthread_mutex_lock(&st->mu);
        st->inflight = handed;
        pthread_cond_broadcast(&st->cv);
        pthread_mutex_unlock(&st->mu);
        return 0;
}

int dmp_store_sync(dmp_store_t *st, char *errstr, size_t errstr_size) {
        char *err = wait_idle(st);
        return err ? set_err(errstr, errstr_size, "cannot write state", err) : 0;
}

void dmp_store_mem_usage(dmp_store_t *st, uint64_t *block_cache, uint64_t *memtables) {
        *block_cache = rocksdb_cache_get_usage(st->cache);
        uint64_t m = 0, v;
        for (int i = 0; i < CF__CNT; i++)
                if (!rocksdb_property_int_cf(st->db, st->cf[i], "rocksdb.size-all-mem-tables",
                                             &v))
                        m += v;
        *memtables = m;
}
