#include "web.h"

#include <string.h>

#define HTML "text/html; charset=utf-8"

static const struct {
        const char *path, *type, *data;
        const size_t *len; /* generated elsewhere: not a constant expression */
} assets[] = {
        {"/", HTML, dmp_web_index_html, &dmp_web_index_html_len},
        {"/index.html", HTML, dmp_web_index_html, &dmp_web_index_html_len},
        {"/dmpflow.js", "text/javascript; charset=utf-8", dmp_web_dmpflow_js,
         &dmp_web_dmpflow_js_len},
        {"/dmpflow.css", "text/css; charset=utf-8", dmp_web_dmpflow_css, &dmp_web_dmpflow_css_len},
};

int dmp_web_asset(const char *path, dmp_web_asset_t *out) {
        for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++)
                if (!strcmp(assets[i].path, path)) {
                        *out = (dmp_web_asset_t){assets[i].path, assets[i].type, assets[i].data,
                                                 *assets[i].len};
                        return 0;
                }
        return -1;
}
