/* Persistent state in RocksDB.
 *
 * Layout (default column family; all integers big-endian so that byte order
 * is numeric order and one key's windows are adjacent, ordered by start):
 *   'G' "fingerprint"                     -> u64 hash of the pipeline definition
 *   'M' p:be32                            -> v1: next_offset:i64 stream_time:i64
 *   'A' p:be32 win:be16 klen:be16 key start:be64(sign-flipped)
 *                                         -> an entry, encoded by the engine
 * Within a partition and window definition, keys are ordered by length,
 * then bytes; one key's windows are adjacent and ordered by start.
 * Every commit is one atomic WriteBatch: aggregates, deletions of emitted
 * windows and the partition metadata (offsets, stream times) they reflect.
 *
 * Threads: single-threaded use by the processing thread. */
#ifndef DMP_STORE_H
#define DMP_STORE_H

#include <stddef.h>
#include <stdint.h>


typedef struct dmp_store dmp_store_t;

/* Opens (creating if needed) the store in dir. If it holds state of another
 * pipeline definition (fingerprint differs) it fails with a clear message. */
dmp_store_t *dmp_store_open(const char *dir, uint64_t fingerprint, char *errstr,
                            size_t errstr_size);
void dmp_store_close(dmp_store_t *st);

/* Reads a partition's metadata: 1 found, 0 none, -1 error. */
int dmp_store_get_meta(dmp_store_t *st, int32_t partition, int64_t *next_offset,
                       int64_t *stream_time, char *errstr, size_t errstr_size);

/* Called for every entry of a partition; returns 0 to go on, -1 to stop
 * the scan as failed (a corrupt value). */
typedef int(dmp_store_entry_cb_t)(void *opaque, int win, const char *key, size_t key_len,
                                  int64_t start, const void *val, size_t val_len);

/* Calls cb for every entry of the partition. Returns the count or -1. */
long dmp_store_scan(dmp_store_t *st, int32_t partition, dmp_store_entry_cb_t *cb, void *opaque,
                    char *errstr, size_t errstr_size);

/* Batch operations, applied atomically by dmp_store_commit. */
void dmp_store_put_entry(dmp_store_t *st, int32_t partition, int win, const char *key,
                         size_t key_len, int64_t start, const void *val, size_t val_len);
void dmp_store_delete_agg(dmp_store_t *st, int32_t partition, int win, const char *key,
                          size_t key_len, int64_t start);
void dmp_store_put_meta(dmp_store_t *st, int32_t partition, int64_t next_offset,
                        int64_t stream_time);
/* Writes the batch. Returns 0, or -1 with errstr (the batch is dropped). */
int dmp_store_commit(dmp_store_t *st, char *errstr, size_t errstr_size);

#endif
