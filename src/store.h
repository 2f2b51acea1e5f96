/* Persistent state in RocksDB.
 *
 * Layout (store layout 2; docs/STATE.md). Three column families; every
 * integer in a key is big-endian (signed ones sign-flipped) so that byte
 * order is numeric order, and every key starts with the input partition
 * p:be32, so a partition's state is one key range per family:
 *
 *   "meta"     'F'                 -> fingerprint: u64 hash of the pipeline
 *              'L'                 -> layout version (1 byte, 2)
 *              'P' p:be32          -> v1: next_offset:i64 stream_time:i64
 *              'C' p:be32          -> changelog checkpoint: offset:i64 (local)
 *   "windows"  p:be32 win:be16 klen:be16 key start:be64s
 *                                  -> a window entry, encoded by the engine
 *                                     (its emitted mark is in the value)
 *   "groups"   p:be32 key          -> group statistics, encoded by the caller
 *
 * Within a partition and window definition, keys are ordered by length,
 * then bytes; one key's windows are adjacent and ordered by start.
 * Every commit is one atomic WriteBatch across the families: aggregates,
 * deletions of emitted windows, group statistics and the partition
 * metadata (offsets, stream times) they reflect.
 *
 * The changelog (docs/STATE.md): with a log hook set, every operation of
 * a batch on a partition's state (meta 'P', windows, groups; partition
 * >= 0) is also handed to the hook, which writes it to the changelog
 * topic; a restore applies those records back (dmp_store_apply_logged).
 * The checkpoint 'C' is local: the changelog offset from which replaying
 * reproduces this store's state of the partition.
 *
 * Layout 1 (everything in the default family, prefixed 'G', 'M', 'A') is
 * migrated to layout 2 on the first open with the same fingerprint.
 *
 * Threads: used by one thread (the processing thread). A writable store
 * also runs its own writer thread, which writes the batches handed to it
 * by dmp_store_commit_async, one at a time, in order; every read and the
 * next commit wait for the write in flight, so they see all commits handed
 * over, and dmp_store_close lets it land. */
#ifndef DMP_STORE_H
#define DMP_STORE_H

#include <stddef.h>
#include <stdint.h>

#define DMP_STORE_LAYOUT 2

/* The longest key, or group value, kept in state: the klen:be16 of the
 * window keys (and the entries' 16-bit key_len, wtable.h). A record with a
 * longer one is a dead letter (class key_too_long): two keys that differ
 * only beyond it must not share state (issue 22). */
#define DMP_KEY_MAX 65535

typedef struct dmp_store dmp_store_t;

/* What `dmpflow check` can tell of dir without changing it, as `run`
 * would find it: 0 when a pipeline of this fingerprint can keep its state
 * there (the directory exists and is writable, or it can be created, and
 * a store in it is this pipeline's); -1 with errstr when not. *lock_pid is
 * the process that holds the store open (RocksDB's lock), or 0: run must
 * wait for it. A store of layout 1 or not dmpflow's is left for run (it
 * migrates the first, refuses the second).
 * Never on a store this process has open: closing a descriptor of its LOCK
 * file would drop the process's lock (POSIX fcntl locks are per process). */
int dmp_store_probe(const char *dir, uint64_t fingerprint, int *lock_pid, char *errstr,
                    size_t errstr_size);

/* Memory given to RocksDB. 0 fields take the defaults (8 MiB each). */
typedef struct dmp_store_opts {
        size_t block_cache_bytes; /* LRU cache of data, index and filter blocks */
        size_t memtable_bytes;    /* all memtables of all families together */
        int read_only;            /* inspection: no lock taken, no writes, no creation */
} dmp_store_opts_t;

/* Opens (creating if needed, with its parents) the store in dir with
 * default memory sizes.
 * If it holds state of another pipeline definition (fingerprint differs)
 * it fails with a clear message. */
dmp_store_t *dmp_store_open(const char *dir, uint64_t fingerprint, char *errstr,
                            size_t errstr_size);
/* The same with explicit options (opts may be NULL). With opts->read_only
 * a fingerprint of 0 accepts any pipeline (dmpflow state). */
dmp_store_t *dmp_store_open_opts(const char *dir, uint64_t fingerprint,
                                 const dmp_store_opts_t *opts, char *errstr,
                                 size_t errstr_size);
void dmp_store_close(dmp_store_t *st);

/* The fingerprint the store was written with. */
uint64_t dmp_store_fingerprint(const dmp_store_t *st);

/* Reads a partition's metadata: 1 found, 0 none, -1 error. */
int dmp_store_get_meta(dmp_store_t *st, int32_t partition, int64_t *next_offset,
                       int64_t *stream_time, char *errstr, size_t errstr_size);

/* Calls cb(opaque, partition) for every partition with metadata, in
 * order. Returns the count or -1. */
long dmp_store_partitions(dmp_store_t *st, void (*cb)(void *opaque, int32_t partition),
                          void *opaque, char *errstr, size_t errstr_size);

/* Called for every entry of a partition; returns 0 to go on, -1 to stop
 * the scan as failed (a corrupt value). */
typedef int(dmp_store_entry_cb_t)(void *opaque, int win, const char *key, size_t key_len,
                                  int64_t start, const void *val, size_t val_len);

/* Calls cb for every entry of the partition. Returns the count or -1. */
long dmp_store_scan(dmp_store_t *st, int32_t partition, dmp_store_entry_cb_t *cb, void *opaque,
                    char *errstr, size_t errstr_size);

/* Calls cb for the entries of a key of window definition win, in start
 * order (a range scan). Returns the count or -1. */
long dmp_store_scan_key(dmp_store_t *st, int32_t partition, int win, const char *key,
                        size_t key_len, dmp_store_entry_cb_t *cb, void *opaque, char *errstr,
                        size_t errstr_size);

/* Reads one committed entry: 1 found (*val malloc'ed, caller frees), 0 not
 * found, -1 error. The reload path of evicted entries. */
int dmp_store_get_entry(dmp_store_t *st, int32_t partition, int win, const char *key,
                        size_t key_len, int64_t start, void **val, size_t *val_len,
                        char *errstr, size_t errstr_size);

/* Group statistics of a partition ("groups" family): the key and value
 * encodings are the caller's. Called for each; 0 to go on, -1 to fail. */
typedef int(dmp_store_group_cb_t)(void *opaque, const char *key, size_t key_len,
                                  const void *val, size_t val_len);
long dmp_store_scan_groups(dmp_store_t *st, int32_t partition, dmp_store_group_cb_t *cb,
                           void *opaque, char *errstr, size_t errstr_size);

/* Batch operations, applied atomically by dmp_store_commit. */
void dmp_store_put_entry(dmp_store_t *st, int32_t partition, int win, const char *key,
                         size_t key_len, int64_t start, const void *val, size_t val_len);
void dmp_store_delete_agg(dmp_store_t *st, int32_t partition, int win, const char *key,
                          size_t key_len, int64_t start);
void dmp_store_put_meta(dmp_store_t *st, int32_t partition, int64_t next_offset,
                        int64_t stream_time);
void dmp_store_put_group(dmp_store_t *st, int32_t partition, const char *key, size_t key_len,
                         const void *val, size_t val_len);
void dmp_store_delete_group(dmp_store_t *st, int32_t partition, const char *key,
                            size_t key_len);
/* Deletes all of a partition's state (metadata, checkpoint, windows,
 * groups) with one range deletion per family. Not logged. */
void dmp_store_drop_partition(dmp_store_t *st, int32_t partition);

/* ---- the changelog ---- */

/* The families of logged operations. */
#define DMP_STORE_FAMILY_META    'm'
#define DMP_STORE_FAMILY_WINDOWS 'w'
#define DMP_STORE_FAMILY_GROUPS  'g'

/* Receives each logged operation of the pending batch as it is added: the
 * partition, its family, the record's key in that family (RocksDB's key,
 * partition prefix included) and its value (NULL: a deletion). */
typedef void(dmp_store_log_cb_t)(void *opaque, int32_t partition, int family, const void *key,
                                 size_t key_len, const void *val, size_t val_len);
/* Sets (or with NULL clears) the log hook. */
void dmp_store_set_log(dmp_store_t *st, dmp_store_log_cb_t *cb, void *opaque);

/* Adds a logged operation of partition to the pending batch (a restore),
 * without logging it again. Returns 0, or -1 with errstr if the family is
 * unknown or the key is not one of that partition's. */
int dmp_store_apply_logged(dmp_store_t *st, int32_t partition, int family, const void *key,
                           size_t key_len, const void *val, size_t val_len, char *errstr,
                           size_t errstr_size);

/* Calls cb with every record of the partition's state (its meta 'P',
 * windows, groups) as the log hook would see its put: to log a state that
 * was never logged. Returns the count or -1 with errstr. */
long dmp_store_replay(dmp_store_t *st, int32_t partition, dmp_store_log_cb_t *cb, void *opaque,
                      char *errstr, size_t errstr_size);

/* The partition's changelog checkpoint: 1 found (*offset), 0 none, -1
 * error. */
int dmp_store_get_checkpoint(dmp_store_t *st, int32_t partition, int64_t *offset,
                             char *errstr, size_t errstr_size);
/* Adds the checkpoint to the pending batch (not logged). */
void dmp_store_put_checkpoint(dmp_store_t *st, int32_t partition, int64_t offset);

/* Drops the pending batch (a commit that was not made). */
void dmp_store_discard(dmp_store_t *st);
/* Number of operations in the pending batch. */
size_t dmp_store_pending(const dmp_store_t *st);
/* Writes the batch and waits for it. Returns 0, or -1 with errstr (the
 * batch is dropped). */
int dmp_store_commit(dmp_store_t *st, char *errstr, size_t errstr_size);
/* Hands the batch to the writer thread and returns: waits only for the
 * previous write, and fails (-1, errstr; this batch dropped) if that one
 * failed. A failure of this write is reported by the next commit or sync.
 * An empty batch is not written. */
int dmp_store_commit_async(dmp_store_t *st, char *errstr, size_t errstr_size);
/* Waits for the write in flight: 0 when every batch handed over is
 * written, -1 with errstr if one failed. */
int dmp_store_sync(dmp_store_t *st, char *errstr, size_t errstr_size);

/* Fault injection for tests, in the spirit of SQLite's sqlite3FaultSim:
 * the next n batch writes (of any store, from now on) fail as a RocksDB
 * write error would, without writing anything. 0 disarms it. Any thread. */
void dmp_store_fault_sim(int n);

/* RocksDB's memory: block cache usage (data, index and filter blocks) and
 * the memtables of all families, in bytes. */
void dmp_store_mem_usage(dmp_store_t *st, uint64_t *block_cache, uint64_t *memtables);

#endif
