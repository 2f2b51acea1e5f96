/* Events of schemas/event.avsc, encoded for the unit tests that feed the
 * engine or the daemon. */
#ifndef DMP_TEST_EVENT_ENC_H
#define DMP_TEST_EVENT_ENC_H

#include <stddef.h>
#include <stdint.h>

/* Writes the event (user_id, segment, ts, price, quantity, clicks: null
 * when clicks_null, branch 1 otherwise) to buf, which holds at least 40
 * bytes plus the strings' lengths; returns its length. */
size_t test_event_encode(unsigned char *buf, const char *user, const char *segment, int64_t ts,
                         double price, int32_t quantity, int clicks_null, int64_t clicks);

#endif
