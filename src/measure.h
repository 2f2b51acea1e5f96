/* Measures: named linear combinations f(x) = sum_i a_i * x_i of numeric
 * input fields, parsed from text such as "0.7*price + 0.3*quantity". */
#ifndef DMP_MEASURE_H
#define DMP_MEASURE_H

#include <stddef.h>

#define DMP_MEASURE_MAX_TERMS 32

typedef struct dmp_measure_term {
        double coef;
        char *field; /* owned */
        int slot;    /* numeric field slot in the decoded event, set by the caller */
} dmp_measure_term_t;

typedef struct dmp_measure {
        char *name; /* owned */
        int nterms;
        dmp_measure_term_t terms[DMP_MEASURE_MAX_TERMS];
} dmp_measure_t;

/* Parses `expr` into m (terms of one field are summed). Returns 0, or -1
 * with a message in errstr. On error m holds nothing to free. */
int dmp_measure_parse(dmp_measure_t *m, const char *name, const char *expr, char *errstr,
                      size_t errstr_size);
void dmp_measure_clear(dmp_measure_t *m);

/* Evaluates the measure over numeric slots; returns 0 if a term's field is
 * undefined (null / absent: bit `slot` of defined_mask is 0), else 1 with
 * *out set. */
static inline int dmp_measure_eval(const dmp_measure_t *m, const double *vals,
                                   unsigned long long defined_mask, double *out) {
        double acc = 0.0;
        for (int i = 0; i < m->nterms; i++) {
                int s = m->terms[i].slot;
                if (!(defined_mask & (1ULL << s)))
                        return 0;
                acc += m->terms[i].coef * vals[s];
        }
        *out = acc;
        return 1;
}

#endif
