#include "decoder.h"

#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_plan.h"
#include "avro_schema.h"
#include "util.h"

#define DMP_MAX_NEEDS (DMP_MAX_NUM_FIELDS + DMP_MAX_LABELS + 2)

struct dmp_decoder {
        dmp_schema_t *reader; /* declares the fields the pipeline reads */
        dmp_schema_t *writer; /* what the records are written with; NULL: reader */
        dmp_need_t needs[DMP_MAX_NEEDS];
        int need_index[DMP_MAX_NEEDS]; /* reader field of needs[i] */
        int nneeds;
        int nslots;
        int nlabels;
        int reject_nonfinite;
        dmp_plan_t *plan; /* recompiled whenever the needs or the writer change */
        uint64_t plan_real; /* dmp_plan_real_slots(plan) */
        dmp_decode_err_t last_error;
        /* Confluent framing: writer schemas by id, each with its plan, or
         * the reason it cannot be read */
        dmp_schema_provider_t *provider;
        void *provider_opaque;
        struct writer_entry {
                int32_t id;
                int unknown;        /* the registry has no such id (until expires_ms) */
                int64_t expires_ms; /* unknown: when to ask the registry again */
                uint64_t used;      /* last use, for evicting the least recently used */
                dmp_schema_t *schema;
                dmp_plan_t *plan; /* NULL: incompatible or unknown, see error */
                uint64_t plan_real; /* dmp_plan_real_slots(plan) */
                char *error;
        } *writers;
        size_t nwriters, last_writer, max_writers;
        uint64_t uses;
        /* The reference (Avro C's generic reader, resolving when the writer
         * schema differs), created on first use. */
        avro_value_iface_t *riface, *resolver;
        avro_value_t rvalue, wvalue;
        avro_reader_t in;
};

static const char *const decode_err_names[DMP_DECODE__CNT] = {
        [DMP_DECODE_OK] = "ok",
        [DMP_DECODE_TRUNCATED] = "truncated",
        [DMP_DECODE_VARINT] = "varint",
        [DMP_DECODE_LENGTH] = "length",
        [DMP_DECODE_UNION] = "union",
        [DMP_DECODE_ENUM] = "enum",
        [DMP_DECODE_INT_RANGE] = "int_range",
        [DMP_DECODE_TRAILING] = "trailing",
        [DMP_DECODE_DEPTH] = "depth",
        [DMP_DECODE_NULL_TIME] = "null_time",
        [DMP_DECODE_RESOLVE] = "resolve",
        [DMP_DECODE_TIME_RANGE] = "time_range",
        [DMP_DECODE_BAD_MAGIC] = "bad_magic",
        [DMP_DECODE_UNKNOWN_SCHEMA] = "unknown_schema",
        [DMP_DECODE_INCOMPATIBLE] = "incompatible",
        [DMP_DECODE_UNAVAILABLE] = "registry_unavailable",
        [DMP_DECODE_NONFINITE] = "nonfinite",
        [DMP_DECODE_KEY_TOO_LONG] = "key_too_long",
};
static const char *const decode_err_text[DMP_DECODE__CNT] = {
        [DMP_DECODE_OK] = "ok",
        [DMP_DECODE_TRUNCATED] = "malformed Avro record: truncated",
        [DMP_DECODE_VARINT] = "malformed Avro record: varint longer than 10 bytes",
        [DMP_DECODE_LENGTH] = "malformed Avro record: negative length or count, or one past the end",
        [DMP_DECODE_UNION] = "malformed Avro record: union branch out of range",
        [DMP_DECODE_ENUM] = "malformed Avro record: enum symbol out of range",
        [DMP_DECODE_INT_RANGE] = "malformed Avro record: int value out of 32-bit range",
        [DMP_DECODE_TRAILING] = "malformed Avro record: trailing bytes",
        [DMP_DECODE_DEPTH] = "malformed Avro record: values nested too deep",
        [DMP_DECODE_NULL_TIME] = "event time field is null",
        [DMP_DECODE_RESOLVE] = "a writer union branch or enum symbol the reader cannot read",
        [DMP_DECODE_TIME_RANGE] = "event time out of range",
        [DMP_DECODE_BAD_MAGIC] = "not in the Confluent wire format (magic byte 0, schema id)",
        [DMP_DECODE_UNKNOWN_SCHEMA] = "unknown schema id",
        [DMP_DECODE_INCOMPATIBLE] = "writer schema incompatible with the reader schema",
        [DMP_DECODE_UNAVAILABLE] = "schema registry unavailable",
        [DMP_DECODE_NONFINITE] = "a numeric field is NaN or infinite",
        [DMP_DECODE_KEY_TOO_LONG] = "a key or group value longer than 65535 bytes",
};
const char *dmp_decode_err_name(dmp_decode_err_t e) {
        return (unsigned)e < DMP_DECODE__CNT ? decode_err_names[e] : "unknown";
}

char *dmp_read_file(const char *path, size_t *lenp, char *errstr, size_t errstr_size) {
        FILE *fp = fopen(path, "rb");
        if (!fp) {
                snprintf(errstr, errstr_size, "cannot open %s: %s", path, strerror(errno));
                return NULL;
        }
        size_t cap = 4096, len = 0;
        char *buf = dmp_malloc(cap);
        size_t r;
        while ((r = fread(buf + len, 1, cap - len - 1, fp)) > 0) {
                len += r;
                if (len + 1 == cap)
                        buf = dmp_realloc(buf, cap *= 2);
        }
        int err = ferror(fp);
        fclose(fp);
        if (err) {
                snprintf(errstr, errstr_size, "cannot read %s", path);
                free(buf);
                return NULL;
        }
        buf[len] = '\0';
        if (lenp)
                *lenp = len;
        return buf;
}

static void writer_free(struct writer_entry *w) {
        dmp_schema_destroy(w->schema);
        dmp_plan_destroy(w->plan);
        free(w->error);
}

/* Drops the least recently used writer entry. */
static void writer_evict(dmp_decoder_t *d) {
        size_t lru = 0;
        for (size_t i = 1; i < d->nwriters; i++)
                if (d->writers[i].used < d->writers[lru].used)
                        lru = i;
        writer_free(&d->writers[lru]);
        d->writers[lru] = d->writers[--d->nwriters];
        d->last_writer = d->nwriters; /* none */
}

/* The field JSON whose logical type describes the data of needed field nd
 * (reader field ri): the writer's if it has a logical type, else the
 * reader's. */
static json_t *logical_field(const dmp_decoder_t *d, const dmp_schema_t *writer,
                             const dmp_need_t *nd, int ri) {
        avro_schema_t r = d->reader->avro;
        /* a writer that is no record (a registry can hold any schema) is
         * rejected by the plan compiler; Avro C's record accessors would
         * crash on it (fuzz finding, docs/FUZZING.md) */
        if (writer && is_avro_record(writer->avro)) {
                avro_schema_t w = writer->avro;
                int wi = avro_schema_record_field_get_index(w, nd->field);
                json_t *rf = dmp_schema_field_json(d->reader, r, ri);
                size_t k;
                json_t *a;
                json_array_foreach(json_object_get(rf, "aliases"), k, a) {
                        if (wi < 0 && json_string_value(a))
                                wi = avro_schema_record_field_get_index(w, json_string_value(a));
                }
                json_t *wf = wi >= 0 ? dmp_schema_field_json(writer, w, wi) : NULL;
                if (wf && *dmp_schema_logical_type(wf))
                        return wf;
        }
        return dmp_schema_field_json(d->reader, r, ri);
}

/* Sets the unit of a time field (nd->micros / nd->days) or the decimal
 * scale of a numeric one from its logical type. */
static void logical_unit(const dmp_decoder_t *d, const dmp_schema_t *writer, dmp_need_t *nd,
                         int ri) {
        json_t *f = logical_field(d, writer, nd, ri);
        const char *lt = dmp_schema_logical_type(f);
        nd->micros = nd->role == DMP_NEED_TIME && !strcmp(lt, "timestamp-micros");
        nd->days = nd->role == DMP_NEED_TIME && !strcmp(lt, "date");
        nd->decimal = nd->role == DMP_NEED_NUM && !strcmp(lt, "decimal");
        nd->scale = nd->decimal ? dmp_schema_decimal_scale(f) : 0;
}

/* Drops the reference reader (rebuilt on its next use). */
static void reference_reset(dmp_decoder_t *d) {
        if (d->resolver) {
                if (d->wvalue.self)
                        avro_value_decref(&d->wvalue);
                avro_value_iface_decref(d->resolver);
        }
        if (d->riface) {
                if (d->rvalue.self)
                        avro_value_decref(&d->rvalue);
                avro_value_iface_decref(d->riface);
        }
        if (d->in)
                avro_reader_free(d->in);
        d->resolver = d->riface = NULL;
        d->wvalue.self = d->rvalue.self = NULL;
        d->in = NULL;
}

/* A plan for records of writer (NULL: the reader schema), with the time
 * units of that writer; NULL with errstr set if it cannot be read. */
static dmp_plan_t *compile_for(const dmp_decoder_t *d, const dmp_schema_t *writer,
                               dmp_need_t *needs, char *errstr, size_t errstr_size) {
        for (int i = 0; i < d->nneeds; i++)
                if (needs[i].role != DMP_NEED_KEY && d->need_index[i] >= 0)
                        logical_unit(d, writer, &needs[i], d->need_index[i]);
        return dmp_plan_compile(writer ? writer : d->reader, d->reader, needs, d->nneeds, errstr,
                                errstr_size);
}

/* The plan of a Confluent writer schema, or its error. */
static void writer_compile(dmp_decoder_t *d, struct writer_entry *w) {
        char err[512];
        dmp_need_t needs[DMP_MAX_NEEDS];
        memcpy(needs, d->needs, sizeof(needs[0]) * (size_t)d->nneeds);
        dmp_plan_destroy(w->plan);
        free(w->error);
        w->error = NULL;
        if (!(w->plan = compile_for(d, w->schema, needs, err, sizeof(err))))
                w->error = dmp_strdup(err);
        else
                w->plan_real = dmp_plan_real_slots(w->plan);
}

/* Recompiles the plans for the current writers and needs; on error the
 * old plan stays. */
static int recompile(dmp_decoder_t *d, char *errstr, size_t errstr_size) {
        dmp_plan_t *pl = compile_for(d, d->writer, d->needs, errstr, errstr_size);
        if (!pl)
                return -1;
        dmp_plan_destroy(d->plan);
        d->plan = pl;
        d->plan_real = dmp_plan_real_slots(pl);
        for (size_t i = 0; i < d->nwriters; i++)
                if (d->writers[i].schema)
                        writer_compile(d, &d->writers[i]);
        return 0;
}

/* Adds a need and recompiles; on error the need is dropped again. */
static int add_need(dmp_decoder_t *d, const char *name, dmp_need_role_t role, int slot,
                    char *errstr, size_t errstr_size) {
        avro_schema_t r = d->reader->avro;
        int idx = avro_schema_record_field_get_index(r, name);
        /* the name is the schema's own copy, which lives as long as d */
        d->needs[d->nneeds] = (dmp_need_t){
                .field = idx >= 0 ? avro_schema_record_field_name(r, idx) : name,
                .role = role, .slot = slot};
        d->need_index[d->nneeds++] = idx;
        if (recompile(d, errstr, errstr_size)) {
                d->nneeds--;
                return -1;
        }
        return 0;
}

dmp_decoder_t *dmp_decoder_new(const char *schema_json, const char *key_field,
                               const char *time_field, char *errstr, size_t errstr_size) {
        dmp_decoder_t *d = dmp_calloc(1, sizeof(*d));
        d->max_writers = 1000;
        if (!(d->reader = dmp_schema_parse(schema_json, errstr, errstr_size)))
                goto fail;
        if (!is_avro_record(d->reader->avro)) {
                snprintf(errstr, errstr_size, "the input schema must be a record");
                goto fail;
        }
        if (recompile(d, errstr, errstr_size))
                goto fail;
        if (key_field && *key_field &&
            add_need(d, key_field, DMP_NEED_KEY, 0, errstr, errstr_size))
                goto fail;
        if (time_field && *time_field &&
            add_need(d, time_field, DMP_NEED_TIME, 0, errstr, errstr_size))
                goto fail;
        return d;
fail:
        dmp_decoder_destroy(d);
        return NULL;
}

int dmp_decoder_set_writer(dmp_decoder_t *d, const char *writer_json, char *errstr,
                           size_t errstr_size) {
        dmp_schema_t *w = dmp_schema_parse(writer_json, errstr, errstr_size);
        if (!w)
                return -1;
        dmp_schema_t *old = d->writer;
        d->writer = w;
        if (recompile(d, errstr, errstr_size)) {
                d->writer = old;
                dmp_schema_destroy(w);
                recompile(d, errstr, 0); /* the old time units back (cannot fail) */
                return -1;
        }
        reference_reset(d);
        dmp_schema_destroy(old);
        return 0;
}

void dmp_decoder_set_confluent(dmp_decoder_t *d, dmp_schema_provider_t *provider,
                               void *opaque) {
        d->provider = provider;
        d->provider_opaque = opaque;
}

void dmp_decoder_destroy(dmp_decoder_t *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->nwriters; i++)
                writer_free(&d->writers[i]);
        free(d->writers);
        reference_reset(d);
        dmp_plan_destroy(d->plan);
        dmp_schema_destroy(d->writer);
        dmp_schema_destroy(d->reader);
        free(d);
}

const char *dmp_decoder_field_name(const dmp_decoder_t *d, int i) {
        if (i < 0 || (size_t)i >= avro_schema_record_size(d->reader->avro))
                return NULL;
        return avro_schema_record_field_name(d->reader->avro, i);
}
int dmp_decoder_num_field(dmp_decoder_t *d, const char *name, char *errstr,
                          size_t errstr_size) {
        for (int i = 0; i < d->nneeds; i++)
                if (d->needs[i].role == DMP_NEED_NUM && !strcmp(d->needs[i].field, name))
                        return d->needs[i].slot;
        if (d->nslots == DMP_MAX_NUM_FIELDS) {
                snprintf(errstr, errstr_size, "more than %d numeric fields", DMP_MAX_NUM_FIELDS);
                return -1;
        }
        if (add_need(d, name, DMP_NEED_NUM, d->nslots, errstr, errstr_size))
                return -1;
        return d->nslots++;
}

int dmp_decoder_label_field(dmp_decoder_t *d, const char *name, char *errstr,
                            size_t errstr_size) {
        for (int i = 0; i < d->nneeds; i++)
                if (d->needs[i].role == DMP_NEED_LABEL && !strcmp(d->needs[i].field, name))
                        return d->needs[i].slot;
        if (d->nlabels == DMP_MAX_LABELS) {
                snprintf(errstr, errstr_size, "more than %d group fields", DMP_MAX_LABELS);
                return -1;
        }
        if (add_need(d, name, DMP_NEED_LABEL, d->nlabels, errstr, errstr_size))
                return -1;
        return d->nlabels++;
}

dmp_decode_err_t dmp_decoder_last_error(const dmp_decoder_t *d) {
        return d->last_error;
}

static int decode_failed(dmp_decoder_t *d, dmp_decode_err_t e, size_t pos, char *errstr,
                         size_t errstr_size) {
        d->last_error = e;
        snprintf(errstr, errstr_size, "%s (at byte %zu)", decode_err_text[e], pos);
        return -1;
}

void dmp_decoder_reject_nonfinite(dmp_decoder_t *d, int on) {
        d->reject_nonfinite = on;
}

/* The error of a non-finite value in num[slot] (out of line: rare). */
static __attribute__((noinline)) int nonfinite(dmp_decoder_t *d, const dmp_event_t *ev, int slot,
                                               char *errstr, size_t errstr_size) {
        const char *field = "?";
        for (int i = 0; i < d->nneeds; i++)
                if (d->needs[i].role == DMP_NEED_NUM && d->needs[i].slot == slot)
                        field = d->needs[i].field;
        d->last_error = DMP_DECODE_NONFINITE;
        snprintf(errstr, errstr_size, "field \"%s\" is %s", field,
                 isnan(ev->num[slot]) ? "NaN" : "infinite");
        return -1;
}

/* The checks after a successful plan run: 0, or -1 (nonfinite). Inline:
 * it runs on every record. real: the slots of the plan that can be
 * nonfinite (dmp_plan_real_slots). */
static inline int decoded(dmp_decoder_t *d, uint64_t real, const dmp_event_t *ev, char *errstr,
                          size_t errstr_size) {
        if (d->reject_nonfinite) {
                for (unsigned long long m = ev->defined & real; m; m &= m - 1) {
                        int slot = __builtin_ctzll(m);
                        if (!isfinite(ev->num[slot]))
                                return nonfinite(d, ev, slot, errstr, errstr_size);
                }
        }
        d->last_error = DMP_DECODE_OK;
        return 0;
}

void dmp_decoder_set_schema_cache(dmp_decoder_t *d, size_t max_entries) {
        d->max_writers = max_entries ? max_entries : 1;
        while (d->nwriters > d->max_writers)
                writer_evict(d);
}

/* The Confluent writer entry of id, fetched and compiled on first use (an
 * unknown id too, for UNKNOWN_SCHEMA_TTL_MS, so that a stream of records
 * with an unknown id does not become a stream of registry requests); NULL,
 * with the class in d->last_error and errstr set, if the registry cannot
 * tell now. At most max_writers entries are kept, the least recently used
 * evicted (and fetched again if needed). */
#define UNKNOWN_SCHEMA_TTL_MS 10000
static struct writer_entry *writer_of(dmp_decoder_t *d, int32_t id, char *errstr,
                                      size_t errstr_size) {
        struct writer_entry *w = NULL;
        if (d->last_writer < d->nwriters && d->writers[d->last_writer].id == id)
                w = &d->writers[d->last_writer];
        for (size_t i = 0; !w && i < d->nwriters; i++)
                if (d->writers[i].id == id)
                        w = &d->writers[d->last_writer = i];
        if (w && w->unknown && dmp_mono_ms() >= w->expires_ms) { /* ask again */
                writer_free(w);
                *w = d->writers[--d->nwriters];
                d->last_writer = d->nwriters;
                w = NULL;
        }
        if (w) {
                w->used = ++d->uses;
                return w;
        }
        const char *json = NULL;
        char err[512] = "";
        int r = d->provider(d->provider_opaque, id, &json, err, sizeof(err));
        if (r < 0) {
                d->last_error = DMP_DECODE_UNAVAILABLE;
                snprintf(errstr, errstr_size, "%s for schema id %d: %s",
                         decode_err_text[d->last_error], (int)id, err);
                return NULL;
        }
        if (d->nwriters >= d->max_writers)
                writer_evict(d);
        d->writers = dmp_realloc(d->writers, (d->nwriters + 1) * sizeof(*d->writers));
        w = &d->writers[d->nwriters];
        *w = (struct writer_entry){.id = id, .used = ++d->uses};
        if (r > 0) {
                w->unknown = 1;
                w->expires_ms = dmp_mono_ms() + UNKNOWN_SCHEMA_TTL_MS;
                w->error = dmp_strdup(err);
        } else if (!(w->schema = dmp_schema_parse(json, err, sizeof(err)))) {
                w->error = dmp_strdup(err);
        } else {
                writer_compile(d, w);
        }
        return &d->writers[d->last_writer = d->nwriters++];
}

/* Runs plan over the record in buf[skip, len) (skip: the framing's bytes,
 * counted in error positions), then the checks of decoded(). */
static inline int decode_with(dmp_decoder_t *d, const dmp_plan_t *plan, uint64_t real,
                              const unsigned char *buf, size_t len, size_t skip, dmp_event_t *ev,
                              char *errstr, size_t errstr_size) {
        size_t pos = 0;
        dmp_decode_err_t e = dmp_plan_run(plan, buf + skip, len - skip, ev, &pos);
        if (e != DMP_DECODE_OK)
                return decode_failed(d, e, pos + skip, errstr, errstr_size);
        return decoded(d, real, ev, errstr, errstr_size);
}

/* dmp_decoder_decode of a record in the Confluent wire format (out of
 * line, so that the raw path saves fewer registers). */
static __attribute__((noinline)) int decode_confluent(dmp_decoder_t *d, const unsigned char *b,
                                                      size_t len, dmp_event_t *ev, char *errstr,
                                                      size_t errstr_size) {
        if (len < 5 || b[0] != 0)
                return decode_failed(d, DMP_DECODE_BAD_MAGIC, 0, errstr, errstr_size);
        int32_t id = (int32_t)dmp_be32_get(b + 1);
        struct writer_entry *w = writer_of(d, id, errstr, errstr_size);
        if (!w)
                return -1;
        if (w->unknown) {
                d->last_error = DMP_DECODE_UNKNOWN_SCHEMA;
                snprintf(errstr, errstr_size, "%s %d: %s", decode_err_text[d->last_error], (int)id,
                         w->error);
                return -1;
        }
        if (!w->plan) {
                d->last_error = DMP_DECODE_INCOMPATIBLE;
                snprintf(errstr, errstr_size, "schema id %d: %s", (int)id, w->error);
                return -1;
        }
        return decode_with(d, w->plan, w->plan_real, b, len, 5, ev, errstr, errstr_size);
}

int dmp_decoder_decode(dmp_decoder_t *d, const void *buf, size_t len, dmp_event_t *ev,
                       char *errstr, size_t errstr_size) {
        if (d->provider)
                return decode_confluent(d, buf, len, ev, errstr, errstr_size);
        return decode_with(d, d->plan, d->plan_real, buf, len, 0, ev, errstr, errstr_size);
}

/* ---- the reference: Avro C's generic reader ----
 *
 * Avro C quirks met here (libavro 1.11):
 *  - its reader allocates a string's or bytes' stated length before reading
 *    it, and leaks that buffer when the data is short; lengths are not
 *    bounded by the input. So every record first goes through the plan,
 *    which bounds everything, and only records it accepts reach Avro C.
 *  - avro_value_get_string() returns the size including the terminating
 *    NUL (0 for an empty value that was never set).
 *  - a union value's type is AVRO_UNION; the branch is a separate value. */
/* Reads a record the plan accepted with Avro C's generic reader into
 * d->rvalue (resolved to the reader schema when the writer differs).
 * Returns 0, or -1 with errstr. */
static int reference_read(dmp_decoder_t *d, const void *buf, size_t len, char *errstr,
                          size_t errstr_size) {
        if (!d->riface) {
                d->riface = avro_generic_class_from_schema(d->reader->avro);
                if (!d->riface || avro_generic_value_new(d->riface, &d->rvalue)) {
                        snprintf(errstr, errstr_size, "cannot build a reader: %s",
                                 avro_strerror());
                        reference_reset(d);
                        return -1;
                }
                if (d->writer) {
                        /* Avro C quirk: its resolver cannot fill a reader
                         * field the writer lacks (no defaults) */
                        d->resolver = avro_resolved_writer_new(d->writer->avro,
                                                               d->reader->avro);
                        if (!d->resolver ||
                            avro_resolved_writer_new_value(d->resolver, &d->wvalue)) {
                                snprintf(errstr, errstr_size, "Avro C cannot resolve: %s",
                                         avro_strerror());
                                reference_reset(d);
                                return -1;
                        }
                        avro_resolved_writer_set_dest(&d->wvalue, &d->rvalue);
                }
                d->in = avro_reader_memory("", 0);
        }
        avro_reader_memory_set_source(d->in, buf, (int64_t)len);
        avro_value_reset(&d->rvalue);
        if (avro_value_read(d->in, d->resolver ? &d->wvalue : &d->rvalue)) {
                snprintf(errstr, errstr_size, "malformed Avro record: %s", avro_strerror());
                return -1;
        }
        return 0;
}

int dmp_decoder_decode_generic(dmp_decoder_t *d, const void *buf, size_t len, dmp_event_t *ev,
                               char *errstr, size_t errstr_size) {
        dmp_event_t gate;
        if (dmp_decoder_decode(d, buf, len, &gate, errstr, errstr_size) ||
            reference_read(d, buf, len, errstr, errstr_size))
                return -1;
        ev->defined = 0;
        ev->has_time = 0;
        for (int i = 0; i < d->nneeds; i++) {
                const dmp_need_t *f = &d->needs[i];
                avro_value_t v, branch;
                if (avro_value_get_by_index(&d->rvalue, (size_t)d->need_index[i], &v, NULL)) {
                        snprintf(errstr, errstr_size, "cannot read field %s: %s", f->field,
                                 avro_strerror());
                        return -1;
                }
                if (avro_value_get_type(&v) == AVRO_UNION) {
                        if (avro_value_get_current_branch(&v, &branch)) {
                                snprintf(errstr, errstr_size, "cannot read field %s: %s",
                                         f->field, avro_strerror());
                                return -1;
                        }
                        v = branch;
                }
                avro_type_t t = avro_value_get_type(&v);
                int64_t l = 0;
                int32_t n32 = 0;
                if (t == AVRO_INT32) {
                        avro_value_get_int(&v, &n32);
                        l = n32;
                } else if (t == AVRO_INT64) {
                        avro_value_get_long(&v, &l);
                }
                switch (f->role) {
                case DMP_NEED_KEY:
                case DMP_NEED_LABEL: {
                        const char *s = "";
                        size_t slen = 0;
                        char *tbuf = f->role == DMP_NEED_KEY ? ev->keybuf : ev->labelbuf[f->slot];
                        if (t == AVRO_STRING) {
                                size_t size = 0;
                                avro_value_get_string(&v, &s, &size);
                                slen = size ? size - 1 : 0;
                        } else if (t != AVRO_NULL) {
                                slen = (size_t)snprintf(tbuf, 24, "%lld", (long long)l);
                                s = tbuf;
                        }
                        if (f->role == DMP_NEED_KEY) {
                                ev->key = s;
                                ev->key_len = slen;
                        } else {
                                ev->label[f->slot] = s;
                                ev->label_len[f->slot] = (uint32_t)slen;
                        }
                        break;
                }
                case DMP_NEED_TIME:
                        if (t == AVRO_NULL) /* (the plan has rejected it already) */
                                return decode_failed(d, DMP_DECODE_NULL_TIME, 0, errstr,
                                                     errstr_size);
                        ev->has_time = 1;
                        if (f->micros)
                                ev->time_ms = dmp_floor_div(l, 1000);
                        else if (!f->days)
                                ev->time_ms = l;
                        else if (__builtin_mul_overflow(l, INT64_C(86400000), &ev->time_ms))
                                ev->time_ms = l < 0 ? INT64_MIN : INT64_MAX;
                        break;
                case DMP_NEED_NUM: {
                        double x = 0.0;
                        if (t == AVRO_NULL)
                                continue;
                        if (t == AVRO_FLOAT) {
                                float fl = 0.0f;
                                avro_value_get_float(&v, &fl);
                                x = fl;
                        } else if (t == AVRO_DOUBLE) {
                                avro_value_get_double(&v, &x);
                        } else if (t == AVRO_BYTES || t == AVRO_FIXED) { /* a decimal */
                                const void *b = NULL;
                                size_t n = 0;
                                if (t == AVRO_BYTES)
                                        avro_value_get_bytes(&v, &b, &n);
                                else
                                        avro_value_get_fixed(&v, &b, &n);
                                x = dmp_decimal_to_double(b, n, f->scale);
                        } else {
                                x = (double)l;
                        }
                        ev->num[f->slot] = x;
                        ev->defined |= 1ULL << f->slot;
                        break;
                }
                }
        }
        return 0;
}

/* ---- the whole record as JSON (dmpflow cat) ---- */

static void json_double(dmp_buf_t *out, double x) {
        if (isnan(x))
                dmp_buf_puts(out, "\"NaN\"");
        else if (isinf(x))
                dmp_buf_puts(out, x > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        else {
                char num[40];
                dmp_buf_append(out, num, dmp_format_double(num, sizeof(num), x));
        }
}

/* Avro's JSON encoding of bytes: one code point per byte. */
static void json_bytes(dmp_buf_t *out, const unsigned char *p, size_t n) {
        dmp_buf_puts(out, "\"");
        for (size_t i = 0; i < n; i++) {
                if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
                        dmp_buf_append(out, (const char *)&p[i], 1);
                else
                        dmp_buf_printf(out, "\\u%04x", p[i]);
        }
        dmp_buf_puts(out, "\"");
}

static int value_json(avro_value_t *v, dmp_buf_t *out, int depth) {
        if (depth > 256)
                return -1; /* (the plan bounds the nesting already) */
        const char *name = NULL;
        const char *s = NULL;
        const void *b = NULL;
        size_t n = 0, size = 0;
        int32_t i32 = 0;
        int64_t i64 = 0;
        float f = 0;
        double x = 0;
        int bo = 0;
        avro_value_t child;
        switch (avro_value_get_type(v)) {
        case AVRO_STRING:
                avro_value_get_string(v, &s, &size);
                dmp_json_string(out, s ? s : "", size ? size - 1 : 0); /* size counts the NUL */
                return 0;
        case AVRO_BYTES:
                avro_value_get_bytes(v, &b, &n);
                json_bytes(out, b, n);
                return 0;
        case AVRO_FIXED:
                avro_value_get_fixed(v, &b, &n);
                json_bytes(out, b, n);
                return 0;
        case AVRO_INT32:
                avro_value_get_int(v, &i32);
                dmp_buf_printf(out, "%" PRId32, i32);
                return 0;
        case AVRO_INT64:
                avro_value_get_long(v, &i64);
                dmp_buf_printf(out, "%" PRId64, i64);
                return 0;
        case AVRO_FLOAT:
                avro_value_get_float(v, &f);
                json_double(out, f);
                return 0;
        case AVRO_DOUBLE:
                avro_value_get_double(v, &x);
                json_double(out, x);
                return 0;
        case AVRO_BOOLEAN:
                avro_value_get_boolean(v, &bo);
                dmp_buf_puts(out, bo ? "true" : "false");
                return 0;
        case AVRO_NULL:
                dmp_buf_puts(out, "null");
                return 0;
        case AVRO_ENUM: {
                avro_value_get_enum(v, &i32);
                const char *sym = avro_schema_enum_get(avro_value_get_schema(v), i32);
                dmp_json_string(out, sym ? sym : "", sym ? strlen(sym) : 0);
                return 0;
        }
        case AVRO_UNION:
                if (avro_value_get_current_branch(v, &child))
                        return -1;
                return value_json(&child, out, depth + 1);
        case AVRO_RECORD:
        case AVRO_MAP:
                avro_value_get_size(v, &n);
                dmp_buf_puts(out, "{");
                for (size_t i = 0; i < n; i++) {
                        if (avro_value_get_by_index(v, i, &child, &name))
                                return -1;
                        if (i)
                                dmp_buf_puts(out, ", ");
                        dmp_json_string(out, name, strlen(name));
                        dmp_buf_puts(out, ": ");
                        if (value_json(&child, out, depth + 1))
                                return -1;
                }
                dmp_buf_puts(out, "}");
                return 0;
        case AVRO_ARRAY:
                avro_value_get_size(v, &n);
                dmp_buf_puts(out, "[");
                for (size_t i = 0; i < n; i++) {
                        if (avro_value_get_by_index(v, i, &child, NULL))
                                return -1;
                        if (i)
                                dmp_buf_puts(out, ", ");
                        if (value_json(&child, out, depth + 1))
                                return -1;
                }
                dmp_buf_puts(out, "]");
                return 0;
        default:
                return -1;
        }
}

int dmp_decoder_to_json(dmp_decoder_t *d, const void *buf, size_t len, dmp_buf_t *out,
                        char *errstr, size_t errstr_size) {
        dmp_event_t gate;
        if (d->provider) {
                d->last_error = DMP_DECODE_OK;
                snprintf(errstr, errstr_size, "a decoder of the Confluent format cannot render");
                return -1;
        }
        if (dmp_decoder_decode(d, buf, len, &gate, errstr, errstr_size) ||
            reference_read(d, buf, len, errstr, errstr_size))
                return -1;
        size_t mark = out->len;
        if (value_json(&d->rvalue, out, 0)) {
                out->len = mark;
                if (out->p)
                        out->p[mark] = '\0';
                d->last_error = DMP_DECODE_OK;
                snprintf(errstr, errstr_size, "cannot render the record: %s", avro_strerror());
                return -1;
        }
        return 0;
}
