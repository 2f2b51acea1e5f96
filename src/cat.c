#include "cat.h"

#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decoder.h"
#include "dlq.h"
#include "dmpflow.h"
#include "registry.h"
#include "schemas.h"
#include "util.h"

#define METADATA_TIMEOUT_MS 10000
#define MAX_CANDIDATES 4 /* raw schemas tried in turn (topics shared by outputs) */
#define MAX_IDS 256      /* Confluent writer schemas kept */

typedef enum { V_BYTES, V_RAW, V_CONFLUENT } vmode_t;

typedef struct id_entry {
        int32_t id;
        dmp_decoder_t *dec; /* NULL: error says why */
        char *error;
} id_entry_t;

typedef struct cat {
        const dmp_cat_opts_t *o;
        FILE *out, *err;
        vmode_t mode;
        int dead; /* the dead-letter topic: show the payload and its error */
        dmp_decoder_t *raw[MAX_CANDIDATES];
        int nraw;
        dmp_registry_t *registry;
        id_entry_t ids[MAX_IDS];
        int nids;
        int fatal; /* the registry cannot answer: exit 1 */
        char fatal_msg[600];
        uint64_t printed, undecoded;
} cat_t;

void dmp_cat_opts_init(dmp_cat_opts_t *o) {
        memset(o, 0, sizeof(*o));
        o->count = -1;
        o->partition = -1;
}

/* ---- schemas ---- */

static int add_raw(cat_t *c, const char *json, char *errstr, size_t errstr_size) {
        if (c->nraw == MAX_CANDIDATES)
                return 0;
        char e[512];
        dmp_decoder_t *d = dmp_decoder_new(json, NULL, NULL, e, sizeof(e));
        if (!d) {
                snprintf(errstr, errstr_size, "%s", e);
                return -1;
        }
        c->raw[c->nraw++] = d;
        c->mode = V_RAW;
        return 0;
}

static int add_raw_file(cat_t *c, const char *path, char *errstr, size_t errstr_size) {
        char e[512];
        char *json = dmp_read_file(path, NULL, e, sizeof(e));
        if (!json) {
                snprintf(errstr, errstr_size, "%s", e);
                return -1;
        }
        int r = add_raw(c, json, e, sizeof(e));
        free(json);
        if (r)
                snprintf(errstr, errstr_size, "%s: %s", path, e);
        return r;
}

static int use_registry(cat_t *c, const char *url, char *errstr, size_t errstr_size) {
        dmp_registry_opts_t ro;
        char user[256];
        if (c->o->conf)
                dmp_registry_opts_from_conf(&ro, c->o->conf, user, sizeof(user));
        else
                dmp_registry_opts_init(&ro);
        if (url)
                ro.url = url;
        if (!(c->registry = dmp_registry_new(&ro, errstr, errstr_size)))
                return -1;
        c->mode = V_CONFLUENT;
        return 0;
}

/* How the input topic's records are written (late copies and dead letters
 * are input records). */
static int input_schema(cat_t *c, char *errstr, size_t errstr_size) {
        const dmp_conf_t *conf = c->o->conf;
        if (conf->input.format == DMP_FORMAT_CONFLUENT)
                return use_registry(c, NULL, errstr, errstr_size);
        return add_raw_file(c, conf->input.schema, errstr, errstr_size);
}

/* The schemas of a topic that -c's configuration reads or writes: 0, 1
 * (not one of its topics), or -1 with errstr. A topic may carry several
 * kinds of output (e.g. results and group results): each is tried. */
static int conf_schemas(cat_t *c, char *errstr, size_t errstr_size) {
        const dmp_conf_t *conf = c->o->conf;
        const char *t = c->o->topic;
        if (!strcmp(t, conf->output.dlq_topic)) {
                c->dead = 1;
                return input_schema(c, errstr, errstr_size);
        }
        if (!strcmp(t, conf->output.late_topic) || !strcmp(t, conf->input.topic))
                return input_schema(c, errstr, errstr_size);
        const char *schemas[3];
        int n = 0, groups = 0, patterns = 0;
        for (int i = 0; i < conf->group_cnt; i++)
                groups |= !strcmp(t, conf->groups[i].topic);
        for (int i = 0; i < conf->pattern_cnt; i++)
                patterns |= !strcmp(t, conf->patterns[i].topic);
        if (!strcmp(t, conf->output.topic))
                schemas[n++] = dmp_schema_window_result;
        if (groups)
                schemas[n++] = dmp_schema_group_result;
        if (patterns)
                schemas[n++] = dmp_schema_pattern;
        if (!n)
                return 1;
        if (conf->input.format == DMP_FORMAT_CONFLUENT) /* outputs are framed by its registry */
                return use_registry(c, NULL, errstr, errstr_size);
        for (int i = 0; i < n; i++)
                if (add_raw(c, schemas[i], errstr, errstr_size))
                        return -1;
        return 0;
}

/* The decoder of a Confluent schema id, fetched once (NULL with the entry's
 * error, or with c->fatal set when the registry cannot answer). */
static id_entry_t *id_decoder(cat_t *c, int32_t id) {
        for (int i = 0; i < c->nids; i++)
                if (c->ids[i].id == id)
                        return &c->ids[i];
        const char *json = NULL;
        char e[512];
        dmp_reg_status_t st = dmp_registry_schema(c->registry, id, &json, e, sizeof(e));
        if (st == DMP_REG_UNAVAILABLE || st == DMP_REG_ERROR) {
                c->fatal = 1;
                snprintf(c->fatal_msg, sizeof(c->fatal_msg), "schema registry: %s", e);
                return NULL;
        }
        if (c->nids == MAX_IDS) { /* keep the newest */
                dmp_decoder_destroy(c->ids[0].dec);
                free(c->ids[0].error);
                memmove(&c->ids[0], &c->ids[1], sizeof(c->ids[0]) * (MAX_IDS - 1));
                c->nids--;
        }
        id_entry_t *en = &c->ids[c->nids++];
        *en = (id_entry_t){.id = id};
        if (st == DMP_REG_NOT_FOUND) {
                snprintf(e, sizeof(e), "unknown schema id %d", (int)id);
                en->error = dmp_strdup(e);
        } else if (!(en->dec = dmp_decoder_new(json, NULL, NULL, e, sizeof(e)))) {
                char m[600];
                snprintf(m, sizeof(m), "schema id %d: %s", (int)id, e);
                en->error = dmp_strdup(m);
        }
        return en;
}

/* Appends the decoded value to out ("schema_id" first for the Confluent
 * format). Returns 0, or -1 with errstr and the class. */
static int decode_value(cat_t *c, const unsigned char *p, size_t len, dmp_buf_t *out,
                        char *errstr, size_t errstr_size, const char **cls) {
        *cls = "undecodable";
        if (!p) {
                snprintf(errstr, errstr_size, "no value (a tombstone)");
                *cls = "null_value";
                return -1;
        }
        if (c->mode == V_CONFLUENT) {
                if (len < 5 || p[0] != 0) {
                        snprintf(errstr, errstr_size, "not in the Confluent wire format");
                        *cls = dmp_decode_err_name(DMP_DECODE_BAD_MAGIC);
                        return -1;
                }
                int32_t id = (int32_t)dmp_be32_get(p + 1);
                id_entry_t *en = id_decoder(c, id);
                if (!en) {
                        snprintf(errstr, errstr_size, "%s", c->fatal_msg);
                        *cls = dmp_decode_err_name(DMP_DECODE_UNAVAILABLE);
                        return -1;
                }
                if (!en->dec) {
                        snprintf(errstr, errstr_size, "%s", en->error);
                        *cls = dmp_decode_err_name(DMP_DECODE_UNKNOWN_SCHEMA);
                        return -1;
                }
                size_t mark = out->len;
                dmp_buf_printf(out, "\"schema_id\": %d, \"value\": ", (int)id);
                if (dmp_decoder_to_json(en->dec, p + 5, len - 5, out, errstr, errstr_size)) {
                        out->len = mark;
                        out->p[mark] = '\0';
                        *cls = dmp_decode_err_name(dmp_decoder_last_error(en->dec));
                        return -1;
                }
                return 0;
        }
        /* raw: the first candidate that reads the whole record */
        for (int i = 0; i < c->nraw; i++) {
                char e[512];
                size_t mark = out->len;
                dmp_buf_puts(out, "\"value\": ");
                if (!dmp_decoder_to_json(c->raw[i], p, len, out, e, sizeof(e)))
                        return 0;
                out->len = mark;
                out->p[mark] = '\0';
                if (i == 0) {
                        snprintf(errstr, errstr_size, "%s", e);
                        *cls = dmp_decode_err_name(dmp_decoder_last_error(c->raw[i]));
                }
        }
        return -1;
}

/* ---- formatting ---- */

static void payload(const cat_t *c, dmp_buf_t *b, const void *p, size_t len) {
        dmp_buf_puts(b, c->o->hex ? "\"payload_hex\": \"" : "\"payload_base64\": \"");
        if (c->o->hex)
                dmp_hex_append(b, p, len);
        else
                dmp_base64_append(b, p, len);
        dmp_buf_puts(b, "\"");
}

/* The value of header name, as text (NULL if absent). */
static void header_text(rd_kafka_headers_t *h, const char *name, dmp_buf_t *b) {
        const void *v = NULL;
        size_t size = 0;
        if (h && !rd_kafka_header_get_last(h, name, &v, &size) && v)
                dmp_json_string(b, v, size);
        else
                dmp_buf_puts(b, "null");
}

static void format_record(cat_t *c, rd_kafka_message_t *m, dmp_buf_t *b) {
        const char *topic = rd_kafka_topic_name(m->rkt);
        dmp_buf_puts(b, "{\"topic\": ");
        dmp_json_string(b, topic, strlen(topic));
        dmp_buf_printf(b, ", \"partition\": %d, \"offset\": %" PRId64 ", ", (int)m->partition,
                       m->offset);
        /* one that does not decode is an error line */
        dmp_buf_t value = {0};
        char errstr[1024];
        const char *cls = NULL;
        int bad = 0;
        if (c->mode != V_BYTES)
                bad = decode_value(c, m->payload, m->len, &value, errstr, sizeof(errstr), &cls);
        if (bad && !c->dead) {
                c->undecoded++;
                dmp_buf_puts(b, "\"error\": ");
                dmp_json_string(b, errstr, strlen(errstr));
                dmp_buf_printf(b, ", \"class\": \"%s\", ", cls);
                payload(c, b, m->payload, m->payload ? m->len : 0);
                dmp_buf_puts(b, "}\n");
                dmp_buf_free(&value);
                return;
        }
        rd_kafka_timestamp_type_t tst;
        int64_t ts = rd_kafka_message_timestamp(m, &tst);
        if (tst == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
                dmp_buf_puts(b, "\"timestamp\": null, ");
        else
                dmp_buf_printf(b, "\"timestamp\": %" PRId64 ", ", ts);
        if (!m->key) {
                dmp_buf_puts(b, "\"key\": null, ");
        } else if (dmp_utf8_valid(m->key, m->key_len)) {
                dmp_buf_puts(b, "\"key\": ");
                dmp_json_string(b, m->key, m->key_len);
                dmp_buf_puts(b, ", ");
        } else {
                dmp_buf_puts(b, "\"key_base64\": \"");
                dmp_base64_append(b, m->key, m->key_len);
                dmp_buf_puts(b, "\", ");
        }
        dmp_buf_puts(b, "\"headers\": {");
        rd_kafka_headers_t *h = NULL;
        if (rd_kafka_message_headers(m, &h))
                h = NULL;
        const char *name;
        const void *v;
        size_t size;
        for (size_t i = 0; h && !rd_kafka_header_get_all(h, i, &name, &v, &size); i++) {
                if (i)
                        dmp_buf_puts(b, ", ");
                dmp_json_string(b, name, strlen(name));
                dmp_buf_puts(b, ": ");
                if (v)
                        dmp_json_string(b, v, size);
                else
                        dmp_buf_puts(b, "null");
        }
        dmp_buf_puts(b, "}, ");
        if (c->dead) {
                dmp_buf_puts(b, "\"error_class\": ");
                header_text(h, DMP_DLQ_H_CLASS, b);
                dmp_buf_puts(b, ", \"error_message\": ");
                header_text(h, DMP_DLQ_H_MESSAGE, b);
                dmp_buf_puts(b, ", ");
                payload(c, b, m->payload, m->payload ? m->len : 0);
                dmp_buf_puts(b, ", ");
                if (bad)
                        dmp_buf_puts(b, "\"value\": null");
        }
        if (c->mode == V_BYTES) {
                if (!c->dead) {
                        if (m->payload)
                                payload(c, b, m->payload, m->len);
                        else
                                dmp_buf_puts(b, "\"value\": null");
                }
        } else if (!bad) {
                dmp_buf_append(b, value.p, value.len);
        }
        dmp_buf_puts(b, "}\n");
        dmp_buf_free(&value);
}

/* ---- the consumer ---- */

static rd_kafka_t *consumer_new(const cat_t *c, char *errstr, size_t errstr_size, int *usage) {
        const dmp_cat_opts_t *o = c->o;
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        char e[512];
        *usage = 1;
        /* -c's [kafka] first (security settings), then what cat needs */
        for (int i = 0; o->conf && i < o->conf->kafka_cnt; i++)
                if (rd_kafka_conf_set(kc, o->conf->kafka[i].name, o->conf->kafka[i].value, e,
                                      sizeof(e)) != RD_KAFKA_CONF_OK) {
                        snprintf(errstr, errstr_size, "%s:%d: [kafka] %s", o->conf->path,
                                 o->conf->kafka[i].line, e);
                        rd_kafka_conf_destroy(kc);
                        return NULL;
                }
        const char *brokers = o->brokers ? o->brokers
                              : o->conf   ? dmp_conf_kafka_get(o->conf, "bootstrap.servers")
                                          : NULL;
        if (!brokers) {
                snprintf(errstr, errstr_size, "no brokers: give -b BROKERS (or -c CONFIG)");
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        const char *set[][2] = {{"bootstrap.servers", brokers},
                                {"client.id", "dmpflow-cat"},
                                {"group.id", "dmpflow-cat"}, /* never joined nor committed */
                                {"enable.auto.commit", "false"},
                                {"enable.auto.offset.store", "false"},
                                {"enable.partition.eof", "true"},
                                {"auto.offset.reset", "error"}, /* --offset past the end */
                                {"log_level", "3"}};
        for (size_t i = 0; i < DMP_ARRAY_SIZE(set); i++)
                if (rd_kafka_conf_set(kc, set[i][0], set[i][1], e, sizeof(e)) !=
                    RD_KAFKA_CONF_OK) {
                        snprintf(errstr, errstr_size, "%s", e);
                        rd_kafka_conf_destroy(kc);
                        return NULL;
                }
        *usage = 0;
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, e, sizeof(e));
        if (!rk) {
                snprintf(errstr, errstr_size, "%s", e);
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        rd_kafka_poll_set_consumer(rk);
        return rk;
}

/* The partitions to read with their start offsets; NULL with errstr. */
static rd_kafka_topic_partition_list_t *partitions(rd_kafka_t *rk, const dmp_cat_opts_t *o,
                                                   char *errstr, size_t errstr_size) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, METADATA_TIMEOUT_MS);
        rd_kafka_topic_destroy(rkt);
        if (err) {
                snprintf(errstr, errstr_size, "cannot read the metadata of %s: %s", o->topic,
                         rd_kafka_err2str(err));
                return NULL;
        }
        rd_kafka_topic_partition_list_t *l = NULL;
        if (md->topic_cnt != 1 || md->topics[0].err) {
                snprintf(errstr, errstr_size, "topic %s: %s", o->topic,
                         md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "not found");
        } else if (o->partition >= md->topics[0].partition_cnt) {
                snprintf(errstr, errstr_size, "topic %s has no partition %d (%d partitions)",
                         o->topic, (int)o->partition, md->topics[0].partition_cnt);
        } else {
                l = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
                for (int i = 0; i < md->topics[0].partition_cnt; i++) {
                        int32_t p = md->topics[0].partitions[i].id;
                        if (o->partition >= 0 && p != o->partition)
                                continue;
                        int64_t off = !o->has_offset   ? RD_KAFKA_OFFSET_BEGINNING
                                      : o->offset >= 0 ? o->offset
                                                       : RD_KAFKA_OFFSET_TAIL(-o->offset);
                        rd_kafka_topic_partition_list_add(l, o->topic, p)->offset = off;
                }
        }
        rd_kafka_metadata_destroy(md);
        return l;
}

static void cat_free(cat_t *c) {
        for (int i = 0; i < c->nraw; i++)
                dmp_decoder_destroy(c->raw[i]);
        for (int i = 0; i < c->nids; i++) {
                dmp_decoder_destroy(c->ids[i].dec);
                free(c->ids[i].error);
        }
        dmp_registry_destroy(c->registry);
}

/* Reads until every partition is at its end (or for ever with follow);
 * returns the exit code. */
static int consume(cat_t *c, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts) {
        const dmp_cat_opts_t *o = c->o;
        int open = parts->cnt, rc = DMP_EXIT_OK;
        char *at_end = dmp_calloc((size_t)parts->cnt, 1);
        rd_kafka_resp_err_t err = rd_kafka_assign(rk, parts);
        if (err) {
                fprintf(c->err, "dmpflow cat: cannot assign %s: %s\n", o->topic,
                        rd_kafka_err2str(err));
                free(at_end);
                return DMP_EXIT_FAILURE;
        }
        dmp_buf_t line = {0};
        while ((o->follow || open > 0) && (o->count < 0 || c->printed < (uint64_t)o->count) &&
               !(o->stop && atomic_load(o->stop))) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                if (!m) {
                        fflush(c->out);
                        continue;
                }
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        for (int i = 0; i < parts->cnt; i++)
                                if (parts->elems[i].partition == m->partition && !at_end[i]) {
                                        at_end[i] = 1;
                                        open--;
                                }
                } else if (m->err) {
                        fprintf(c->err, "dmpflow cat: %s [%d]: %s\n", o->topic, (int)m->partition,
                                rd_kafka_message_errstr(m));
                        char fe[256];
                        if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                            rd_kafka_fatal_error(rk, fe, sizeof(fe))) {
                                rc = DMP_EXIT_FAILURE;
                                rd_kafka_message_destroy(m);
                                break;
                        }
                } else {
                        line.len = 0;
                        format_record(c, m, &line);
                        c->printed++;
                        if (c->fatal) {
                                fprintf(c->err, "dmpflow cat: %s\n", c->fatal_msg);
                                rc = DMP_EXIT_FAILURE;
                                rd_kafka_message_destroy(m);
                                break;
                        }
                        if (fwrite(line.p, 1, line.len, c->out) != line.len) {
                                rd_kafka_message_destroy(m);
                                break; /* the reader went away (EPIPE): done */
                        }
                }
                rd_kafka_message_destroy(m);
        }
        fflush(c->out);
        dmp_buf_free(&line);
        free(at_end);
        return rc;
}

int dmp_cat_run(const dmp_cat_opts_t *o, FILE *out, FILE *err) {
        cat_t c = {.o = o, .out = out, .err = err, .mode = V_BYTES};
        char errstr[1024];
        int rc = DMP_EXIT_USAGE;
        if (o->schema_path && o->registry_url) {
                fprintf(err, "dmpflow cat: --schema and --registry exclude each other\n");
                return DMP_EXIT_USAGE;
        }
        int r = 0;
        if (o->conf) {
                r = conf_schemas(&c, errstr, sizeof(errstr));
                if (r > 0 && !o->schema_path && !o->registry_url) {
                        fprintf(err, "dmpflow cat: %s neither reads nor writes topic %s: give "
                                "--schema FILE or --registry URL\n", o->conf->path, o->topic);
                        goto out;
                }
        }
        if (r >= 0 && (o->schema_path || o->registry_url)) { /* they win over -c */
                for (int i = 0; i < c.nraw; i++)
                        dmp_decoder_destroy(c.raw[i]);
                c.nraw = 0;
                dmp_registry_destroy(c.registry);
                c.registry = NULL;
                r = o->schema_path ? add_raw_file(&c, o->schema_path, errstr, sizeof(errstr))
                                   : use_registry(&c, o->registry_url, errstr, sizeof(errstr));
        }
        if (r < 0) {
                fprintf(err, "dmpflow cat: %s\n", errstr);
                goto out;
        }
        int usage;
        rd_kafka_t *rk = consumer_new(&c, errstr, sizeof(errstr), &usage);
        if (!rk) {
                fprintf(err, "dmpflow cat: %s\n", errstr);
                rc = usage ? DMP_EXIT_USAGE : DMP_EXIT_FAILURE;
                goto out;
        }
        rd_kafka_topic_partition_list_t *parts = partitions(rk, o, errstr, sizeof(errstr));
        if (!parts) {
                fprintf(err, "dmpflow cat: %s\n", errstr);
                rc = DMP_EXIT_FAILURE;
        } else {
                rc = consume(&c, rk, parts);
                rd_kafka_topic_partition_list_destroy(parts);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        if (c.undecoded)
                fprintf(err, "dmpflow cat: %" PRIu64 " of %" PRIu64 " records could not be "
                        "decoded (error lines)\n", c.undecoded, c.printed);
out:
        cat_free(&c);
        return rc;
}
