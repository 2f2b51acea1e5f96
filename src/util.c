#include "util.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t size) {
        fprintf(stderr, "dmpflow: out of memory allocating %zu bytes\n", size);
        abort();
}

void *dmp_malloc(size_t size) {
        void *p = malloc(size ? size : 1);
        if (!p)
                oom(size);
        return p;
}

void *dmp_calloc(size_t n, size_t size) {
        void *p = calloc(n ? n : 1, size ? size : 1);
        if (!p)
                oom(n * size);
        return p;
}

void *dmp_realloc(void *p, size_t size) {
        void *q = realloc(p, size ? size : 1);
        if (!q)
                oom(size);
        return q;
}

size_t dmp_format_long(char *buf, int64_t v) {
        char tmp[20];
        size_t n = 0;
        uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        do {
                tmp[n++] = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        size_t len = 0;
        if (v < 0)
                buf[len++] = '-';
        while (n)
                buf[len++] = tmp[--n];
        return len;
}

char *dmp_strndup(const char *s, size_t n) {
        char *d = dmp_malloc(n + 1);
        memcpy(d, s, n);
        d[n] = '\0';
        return d;
}

char *dmp_strdup(const char *s) {
        return dmp_strndup(s, strlen(s));
}

int dmp_edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        if (la > 64 || lb > 64)
                return 1000;
        int prev[65], cur[65];
        for (size_t j = 0; j <= lb; j++)
                prev[j] = (int)j;
        for (size_t i = 1; i <= la; i++) {
                cur[0] = (int)i;
                for (size_t j = 1; j <= lb; j++) {
                        int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
                        int del = prev[j] + 1, ins = cur[j - 1] + 1;
                        cur[j] = sub < del ? (sub < ins ? sub : ins)
                                           : (del < ins ? del : ins);
                }
                memcpy(prev, cur, sizeof(int) * (lb + 1));
        }
        return prev[lb];
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
        (void)sb;
        (void)flag;
        (void)ftw;
        return remove(path);
}

int dmp_rmtree(const char *path) {
        int r = nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return r != 0 && errno != ENOENT ? -1 : 0;
}

void dmp_buf_append(dmp_buf_t *b, const char *s, size_t n) {
        if (b->len + n + 1 > b->cap) {
                b->cap = (b->len + n + 1) * 2;
                b->p = dmp_realloc(b->p, b->cap);
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

void dmp_buf_printf(dmp_buf_t *b, const char *fmt, ...) {
        char small[512];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n < sizeof(small)) {
                dmp_buf_append(b, small, (size_t)n);
                return;
        }
        char *big = dmp_malloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        dmp_buf_append(b, big, (size_t)n);
        free(big);
}

void dmp_buf_free(dmp_buf_t *b) {
        free(b->p);
        b->p = NULL;
        b->len = b->cap = 0;
}

int dmp_list_next(const char **s, const char **name, size_t *len) {
        while (**s == ' ' || **s == ',')
                (*s)++;
        *name = *s;
        *len = strcspn(*s, ", ");
        *s += *len;
        return *len > 0;
}
