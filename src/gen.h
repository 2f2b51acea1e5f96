/* Synthetic events (schemas/event.avsc) for tests, benchmarks, the demo and
 * users: deterministic for a seed. */
#ifndef DMP_GEN_H
#define DMP_GEN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dmp_gen_opts {
        const char *brokers;
        const char *topic;
        int64_t count;        /* < 0: until stopped */
        double rate;          /* events/s; <= 0: as fast as possible */
        int keys;             /* distinct user_id values */
        int keys_in_order;    /* event i has key i % keys (else random) */
        int groups;           /* distinct segment values */
        uint64_t seed;
        double ooo;           /* fraction of events displaced back in time */
        int64_t max_delay_ms; /* by up to this much (never before start_ms) */
        int64_t start_ms;     /* event time of the first event */
        int64_t step_ms;      /* event time advance per event */
        double null_clicks;   /* fraction of events whose clicks is null */
        int quiet;
        const char *registry_url; /* set: the Confluent wire format, schema_path
                                   * registered as <topic>-value */
        const char *schema_path;  /* default schemas/event.avsc */
        int nexmark;              /* Nexmark bids (schemas/nexmark_bid.avsc) instead */
} dmp_gen_opts_t;

void dmp_gen_opts_init(dmp_gen_opts_t *o);

typedef struct dmp_gen {
        dmp_gen_opts_t o;
        uint64_t rng;
        int64_t i;
} dmp_gen_t;

void dmp_gen_init(dmp_gen_t *g, const dmp_gen_opts_t *o);

/* Encodes the next event into buf (>= 256 bytes) and its key (user_id)
 * into key (>= 32 bytes). Returns the encoded length. */
size_t dmp_gen_next(dmp_gen_t *g, unsigned char *buf, char *key, size_t *key_len);

/* The same for a Nexmark bid (schemas/nexmark_bid.avsc), keyed by auction:
 * after Beam's Nexmark generator, a new auction every 50 bids, 100 in
 * flight, and half of the bids on "hot" auctions (multiples of 100). */
size_t dmp_gen_next_bid(dmp_gen_t *g, unsigned char *buf, char *key, size_t *key_len);

/* Produces o->count events to o->brokers/o->topic, keyed by user_id with
 * the Java client's partitioner (murmur2), until done or *stop becomes
 * non-zero (stop may be NULL). Returns 0, or -1 with errstr. */
int dmp_gen_produce(const dmp_gen_opts_t *o, atomic_int *stop, char *errstr,
                    size_t errstr_size);

#endif
