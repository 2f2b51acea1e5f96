/* Avro encodings of the records dmpflow publishes: window results
 * (schemas/window_result.avsc), group results (schemas/group_result.avsc)
 * and patterns (schemas/pattern.avsc), shared by the daemon and the demo.
 * Each *_size() bounds what the encoder writes. */
#ifndef DMP_OUTREC_H
#define DMP_OUTREC_H

#include <stddef.h>

#include "engine.h"
#include "groups.h"

size_t dmp_outrec_result_size(const dmp_result_t *r);
size_t dmp_outrec_result(unsigned char *buf, const dmp_result_t *r);

size_t dmp_outrec_group_size(const dmp_group_result_t *r);
size_t dmp_outrec_group(unsigned char *buf, const dmp_group_result_t *r);

size_t dmp_outrec_pattern_size(const dmp_pattern_result_t *r);
size_t dmp_outrec_pattern(unsigned char *buf, const dmp_pattern_result_t *r);

#endif
