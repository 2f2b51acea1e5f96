#include "measure.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void skip_ws(const char **p) {
        while (isspace((unsigned char)**p))
                (*p)++;
}

static int parse_number(const char **p, double *out) {
        char *end;
        if (!isdigit((unsigned char)**p) && **p != '.')
                return 0;
        double v = strtod(*p, &end);
        if (end == *p)
                return 0;
        *p = end;
        *out = v;
        return 1;
}

static int parse_ident(const char **p, const char **start, size_t *len) {
        const char *s = *p;
        if (!isalpha((unsigned char)*s) && *s != '_')
                return 0;
        while (isalnum((unsigned char)*s) || *s == '_')
                s++;
        *start = *p;
        *len = (size_t)(s - *p);
        *p = s;
        return 1;
}

void dmp_measure_clear(dmp_measure_t *m) {
        for (int i = 0; i < m->nterms; i++)
                free(m->terms[i].field);
        free(m->name);
        memset(m, 0, sizeof(*m));
}

/* Grammar: ['+'|'-'] term (('+'|'-') term)*;
 *          term = number '*' field | field '*' number | field */
int dmp_measure_parse(dmp_measure_t *m, const char *name, const char *expr, char *errstr,
                      size_t errstr_size) {
        memset(m, 0, sizeof(*m));
        const char *p = expr;
        int first = 1;
        skip_ws(&p);
        if (!*p) {
                snprintf(errstr, errstr_size, "empty expression");
                return -1;
        }
        while (*p) {
                double sign = 1.0;
                skip_ws(&p);
                if (*p == '+' || *p == '-') {
                        sign = *p == '-' ? -1.0 : 1.0;
                        p++;
                } else if (!first) {
                        snprintf(errstr, errstr_size, "expected '+' or '-' at \"%s\"", p);
                        goto fail;
                }
                first = 0;
                skip_ws(&p);
                double coef = 1.0;
                const char *id = NULL;
                size_t idl = 0;
                if (parse_number(&p, &coef)) {
                        skip_ws(&p);
                        if (*p != '*') {
                                snprintf(errstr, errstr_size,
                                         "a constant term is not a weighted field; expected '*' "
                                         "after the coefficient at \"%s\"", p);
                                goto fail;
                        }
                        p++;
                        skip_ws(&p);
                        if (!parse_ident(&p, &id, &idl)) {
                                snprintf(errstr, errstr_size, "expected a field name at \"%s\"", p);
                                goto fail;
                        }
                } else if (parse_ident(&p, &id, &idl)) {
                        skip_ws(&p);
                        if (*p == '*') {
                                p++;
                                skip_ws(&p);
                                if (!parse_number(&p, &coef)) {
                                        snprintf(errstr, errstr_size,
                                                 "expected a coefficient at \"%s\"", p);
                                        goto fail;
                                }
                        }
                } else {
                        snprintf(errstr, errstr_size, "expected a term at \"%s\"", p);
                        goto fail;
                }
                if (!isfinite(coef)) {
                        snprintf(errstr, errstr_size, "coefficient of %.*s is not finite",
                                 (int)idl, id);
                        goto fail;
                }
                coef *= sign;
                int t;
                for (t = 0; t < m->nterms; t++)
                        if (strlen(m->terms[t].field) == idl && !strncmp(m->terms[t].field, id, idl))
                                break;
                if (t == m->nterms) {
                        if (m->nterms == DMP_MEASURE_MAX_TERMS) {
                                snprintf(errstr, errstr_size, "more than %d fields",
                                         DMP_MEASURE_MAX_TERMS);
                                goto fail;
                        }
                        m->terms[t].field = dmp_strndup(id, idl);
                        m->terms[t].coef = 0.0;
                        m->terms[t].slot = -1;
                        m->nterms++;
                }
                m->terms[t].coef += coef;
                skip_ws(&p);
        }
        m->name = dmp_strdup(name);
        return 0;
fail:
        dmp_measure_clear(m);
        return -1;
}
