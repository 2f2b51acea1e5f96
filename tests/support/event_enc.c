/* Events of schemas/event.avsc (event_enc.h). */
#include "event_enc.h"

#include <string.h>

#include "avro_enc.h"

size_t test_event_encode(unsigned char *buf, const char *user, const char *segment, int64_t ts,
                         double price, int32_t quantity, int clicks_null, int64_t clicks) {
        unsigned char *p = buf;
        p = dmp_avro_put_string(p, user, strlen(user));
        p = dmp_avro_put_string(p, segment, strlen(segment));
        p = dmp_avro_put_long(p, ts);
        p = dmp_avro_put_double(p, price);
        p = dmp_avro_put_long(p, quantity);
        if (clicks_null) {
                p = dmp_avro_put_long(p, 0); /* branch 0: null */
        } else {
                p = dmp_avro_put_long(p, 1); /* branch 1: long */
                p = dmp_avro_put_long(p, clicks);
        }
        return (size_t)(p - buf);
}
