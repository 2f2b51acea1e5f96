/* The live page's files (src/web/), built into the binary: the Makefile
 * turns each into a C string in build/gen/web.c, so the page needs
 * nothing outside the binary (no CDN: it works on an air-gapped cluster).
 * Served by the HTTP endpoint (admin.h). */
#ifndef DMP_WEB_H
#define DMP_WEB_H

#include <stddef.h>

typedef struct dmp_web_asset {
        const char *path; /* the URL path */
        const char *type; /* Content-Type */
        const char *data;
        size_t len;
} dmp_web_asset_t;

/* The file served at URL path: 0 with *out set, or -1. */
int dmp_web_asset(const char *path, dmp_web_asset_t *out);

/* Generated (build/gen/web.c): src/web/NAME.EXT as dmp_web_NAME_EXT. */
extern const char dmp_web_index_html[];
extern const char dmp_web_dmpflow_js[];
extern const char dmp_web_dmpflow_css[];
extern const size_t dmp_web_index_html_len, dmp_web_dmpflow_js_len, dmp_web_dmpflow_css_len;

#endif
