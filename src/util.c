#include "util.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

long dmp_rss_bytes(void) {
        long pages = 0, rss = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f) {
                if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
                        rss = 0;
                fclose(f);
        }
        return rss * sysconf(_SC_PAGESIZE);
}

size_t dmp_format_double(char *buf, size_t size, double x) {
        int n = 0;
        for (int prec = 1; prec <= 17; prec++) {
                n = snprintf(buf, size, "%.*g", prec, x);
                if (strtod(buf, NULL) == x)
                        break;
        }
        return n < 0 ? 0 : (size_t)n;
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

/* The length of the valid UTF-8 sequence at s[0..n) (n >= 1, s[0] >= 0x80),
 * or 0: overlong forms, surrogates and code points past U+10FFFF are
 * invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
        size_t len;
        uint32_t cp;
        if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                len = 2;
                cp = s[0] & 0x1f;
        } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                len = 3;
                cp = s[0] & 0x0f;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                len = 4;
                cp = s[0] & 0x07;
        } else {
                return 0;
        }
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                return 0;
        return len;
}

int dmp_utf8_valid(const void *p, size_t n) {
        const unsigned char *s = p;
        for (size_t i = 0; i < n;) {
                size_t l = s[i] < 0x80 ? 1 : utf8_seq(s + i, n - i);
                if (!l)
                        return 0;
                i += l;
        }
        return 1;
}

void dmp_json_string(dmp_buf_t *out, const char *s, size_t len) {
        const unsigned char *u = (const unsigned char *)s;
        dmp_buf_append(out, "\"", 1);
        for (size_t i = 0; i < len;) {
                unsigned char c = u[i];
                if (c == '"' || c == '\\') {
                        char e[2] = {'\\', (char)c};
                        dmp_buf_append(out, e, 2);
                        i++;
                } else if (c < 0x20 || c == 0x7f) {
                        dmp_buf_printf(out, "\\u%04x", c);
                        i++;
                } else if (c < 0x80) {
                        size_t j = i + 1; /* a run of plain ASCII in one append */
                        while (j < len && u[j] >= 0x20 && u[j] < 0x7f && u[j] != '"' &&
                               u[j] != '\\')
                                j++;
                        dmp_buf_append(out, s + i, j - i);
                        i = j;
                } else {
                        size_t l = utf8_seq(u + i, len - i);
                        if (l)
                                dmp_buf_append(out, s + i, l);
                        else
                                dmp_buf_append(out, "\\ufffd", 6); /* not UTF-8 */
                        i += l ? l : 1;
                }
        }
        dmp_buf_append(out, "\"", 1);
}

void dmp_base64_append(dmp_buf_t *out, const void *p, size_t n) {
        static const char abc[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const unsigned char *s = p;
        char q[4];
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)s[i] << 16;
                if (i + 1 < n)
                        v |= (uint32_t)s[i + 1] << 8;
                if (i + 2 < n)
                        v |= s[i + 2];
                q[0] = abc[v >> 18];
                q[1] = abc[(v >> 12) & 63];
                q[2] = i + 1 < n ? abc[(v >> 6) & 63] : '=';
                q[3] = i + 2 < n ? abc[v & 63] : '=';
                dmp_buf_append(out, q, 4);
        }
        if (!out->p)
                dmp_buf_append(out, "", 0);
}

void dmp_hex_append(dmp_buf_t *out, const void *p, size_t n) {
        static const char digits[] = "0123456789abcdef";
        const unsigned char *s = p;
        for (size_t i = 0; i < n; i++) {
                char h[2] = {digits[s[i] >> 4], digits[s[i] & 15]};
                dmp_buf_append(out, h, 2);
        }
        if (!out->p)
                dmp_buf_append(out, "", 0);
}

int dmp_list_next(const char **s, const char **name, size_t *len) {
        while (**s == ' ' || **s == ',')
                (*s)++;
        *name = *s;
        *len = strcspn(*s, ", ");
        *s += *len;
        return *len > 0;
}
