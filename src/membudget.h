/* The state memory budget: its default (from the cgroup memory limit) and
 * its split between the in-memory entries and RocksDB (docs/STATE.md).
 *
 * Threads: any; no state. */
#ifndef DMP_MEMBUDGET_H
#define DMP_MEMBUDGET_H

#include <stdint.h>

#define DMP_MEM_DEFAULT_BUDGET (UINT64_C(1) << 30) /* no cgroup limit: 1 GiB */
#define DMP_MEM_MIN_SHARE      (UINT64_C(1) << 20) /* RocksDB shares: at least 1 MiB */

typedef struct dmp_mem_split {
        uint64_t entries;     /* in-memory entries: 3/4 */
        uint64_t block_cache; /* RocksDB block cache: 1/8 */
        uint64_t memtables;   /* RocksDB memtables (db_write_buffer_size): 1/8 */
} dmp_mem_split_t;

/* The memory limit of the cgroup from the first file of v2_path (cgroup v2
 * memory.max) and v1_path (v1 memory.limit_in_bytes) that holds one;
 * 0 if neither does or the limit is "max" / effectively unlimited. */
uint64_t dmp_mem_cgroup_limit(const char *v2_path, const char *v1_path);

/* Half of this process's cgroup limit, else DMP_MEM_DEFAULT_BUDGET. */
uint64_t dmp_mem_budget_default(void);

void dmp_mem_split(uint64_t budget, dmp_mem_split_t *out);

#endif
