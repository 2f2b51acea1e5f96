#include "membudget.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A v1 "unlimited" is a huge page-aligned number (PAGE_COUNTER_MAX pages). */
#define UNLIMITED (UINT64_C(1) << 60)

static uint64_t read_limit(const char *path) {
        FILE *fp = path ? fopen(path, "r") : NULL;
        if (!fp)
                return 0;
        char buf[64] = "";
        uint64_t v = 0;
        if (fgets(buf, sizeof(buf), fp) && strncmp(buf, "max", 3)) {
                char *end;
                unsigned long long n = strtoull(buf, &end, 10);
                if (end != buf && n < UNLIMITED)
                        v = n;
        }
        fclose(fp);
        return v;
}

uint64_t dmp_mem_cgroup_limit(const char *v2_path, const char *v1_path) {
        uint64_t v = read_limit(v2_path);
        return v ? v : read_limit(v1_path);
}

uint64_t dmp_mem_budget_default(void) {
        /* Half: the rest is for librdkafka's queues, the producer's buffer
         * and the margin (docs/STATE.md). */
        uint64_t lim = dmp_mem_cgroup_limit("/sys/fs/cgroup/memory.max",
                                            "/sys/fs/cgroup/memory/memory.limit_in_bytes");
        return lim ? lim / 2 : DMP_MEM_DEFAULT_BUDGET;
}

void dmp_mem_split(uint64_t budget, dmp_mem_split_t *out) {
        out->block_cache = budget / 8 < DMP_MEM_MIN_SHARE ? DMP_MEM_MIN_SHARE : budget / 8;
        out->memtables = out->block_cache;
        uint64_t rocks = out->block_cache + out->memtables;
        out->entries = budget > rocks ? budget - rocks : 0;
}
