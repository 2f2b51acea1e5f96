/* Compilation of decode plans (see avro_plan.h and avro_plan_ops.h), with
 * schema resolution: values written with the writer schema are read as the
 * reader schema declares them, by the rules of the Avro specification
 * ("Schema Resolution"):
 *  - record fields are matched by name (or a reader field's aliases);
 *    writer fields the reader lacks are skipped, reader fields the writer
 *    lacks take their default (an error at compile time if none); order
 *    does not matter; record, enum and fixed names must match (or a reader
 *    alias name the writer's type);
 *  - promotions: int -> long, float, double; long -> float, double;
 *    float -> double; string <-> bytes;
 *  - a reader union takes the first branch that matches the writer's type
 *    exactly, else the first it can be promoted to; each branch of a
 *    writer union is resolved the same way, and a branch the reader cannot
 *    read compiles to OP_FAIL: records that use it fail (class "resolve");
 *  - a writer enum symbol missing from the reader enum reads as the reader's
 *    default symbol if it has one, else that record fails ("resolve").
 * A writer schema the reader cannot read at all is an error that names the
 * field path and the rule.
 *
 * Program 0 is the top-level record, flattened (nested records inline);
 * unions, arrays and maps refer to sub-programs compiled from a queue after
 * the program that needs them. Skip-only sub-programs are memoized per
 * (writer, reader) pair, which also terminates recursive schemas. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_plan_ops.h"
#include "avro_schema.h"
#include "util.h"

#define MAX_SCHEMA_DEPTH 64

typedef struct pending {
        avro_schema_t w, r; /* r NULL: skip only; w NULL: the failing program */
        uint32_t id;
        uint8_t dst;
        uint16_t slot;
        char *path; /* for errors */
} pending_t;

typedef struct compiler {
        dmp_plan_t *pl;
        const dmp_schema_t *ws, *rs;
        pending_t *queue; /* sub-programs to compile */
        size_t nqueue, queue_cap;
        size_t *memo; /* queue indexes of skip-only sub-programs */
        size_t nmemo, memo_cap;
        int64_t fail_id; /* the OP_FAIL sub-program, -1 until needed */
        int decimal_scale[DMP_MAX_NUM_FIELDS]; /* a decimal num slot's scale, else -1 */
        char path[1024]; /* the field being compiled, for errors */
        char *errstr;
        size_t errstr_size;
} compiler_t;

#define GROW(arr, n, cap)                                                        \
        do {                                                                     \
                if ((n) == (cap)) {                                              \
                        (cap) = (cap) ? (cap) * 2 : 16;                          \
                        (arr) = dmp_realloc((arr), (cap) * sizeof(*(arr)));      \
                }                                                                \
        } while (0)

static int error(compiler_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int error(compiler_t *c, const char *fmt, ...) {
        char msg[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (c->path[0])
                snprintf(c->errstr, c->errstr_size, "field \"%s\": %s", c->path, msg);
        else
                snprintf(c->errstr, c->errstr_size, "%s", msg);
        return -1;
}

static void emit(compiler_t *c, uint8_t code, uint8_t dst, uint16_t slot, uint32_t arg) {
        dmp_plan_t *pl = c->pl;
        GROW(pl->ops, pl->nops, pl->ops_cap);
        pl->ops[pl->nops++] = (op_t){code, dst, slot, arg};
}

static uint32_t tab_alloc(compiler_t *c, size_t n) {
        dmp_plan_t *pl = c->pl;
        while (pl->ntab + n > pl->tab_cap) {
                pl->tab_cap = pl->tab_cap ? pl->tab_cap * 2 : 16;
                pl->tab = dmp_realloc(pl->tab, pl->tab_cap * sizeof(*pl->tab));
        }
        uint32_t at = (uint32_t)pl->ntab;
        pl->ntab += n;
        return at;
}

static uint32_t add_const(compiler_t *c, plan_const_t k) {
        dmp_plan_t *pl = c->pl;
        pl->consts = dmp_realloc(pl->consts, (pl->nconsts + 1) * sizeof(*pl->consts));
        pl->consts[pl->nconsts] = k;
        return (uint32_t)pl->nconsts++;
}

/* The constant holding the scale of decimal num slot `slot`. */
static uint32_t decimal_const(compiler_t *c, uint16_t slot) {
        return add_const(c, (plan_const_t){.l = c->decimal_scale[slot]});
}

static avro_schema_t deref(avro_schema_t s) {
        while (s && is_avro_link(s))
                s = avro_schema_link_target(s);
        return s;
}

/* The id of a sub-program reading a w value as r into dst (compiled later). */
static uint32_t sub_program(compiler_t *c, avro_schema_t w, avro_schema_t r, uint8_t dst,
                            uint16_t slot) {
        w = deref(w);
        r = deref(r);
        if (!dst)
                for (size_t i = 0; i < c->nmemo; i++)
                        if (c->queue[c->memo[i]].w == w && c->queue[c->memo[i]].r == r)
                                return c->queue[c->memo[i]].id;
        dmp_plan_t *pl = c->pl;
        GROW(pl->starts, pl->nsubs, pl->subs_cap);
        pending_t pd = {w, r, (uint32_t)pl->nsubs++, dst, slot, dmp_strdup(c->path)};
        GROW(c->queue, c->nqueue, c->queue_cap);
        c->queue[c->nqueue++] = pd;
        if (!dst && w) {
                GROW(c->memo, c->nmemo, c->memo_cap);
                c->memo[c->nmemo++] = c->nqueue - 1;
        }
        return pd.id;
}

/* The sub-program that fails with class "resolve". */
static uint32_t fail_program(compiler_t *c) {
        if (c->fail_id < 0)
                c->fail_id = sub_program(c, NULL, NULL, 0, 0);
        return (uint32_t)c->fail_id;
}

/* A lower bound of the encoded size of a value of s; 0 only for types whose
 * values are always empty (null, fixed(0), records of such types). */
static uint32_t min_size(avro_schema_t s, int depth) {
        s = deref(s);
        if (depth > MAX_SCHEMA_DEPTH)
                return 1;
        switch (avro_typeof(s)) {
        case AVRO_NULL:
                return 0;
        case AVRO_FLOAT:
                return 4;
        case AVRO_DOUBLE:
                return 8;
        case AVRO_FIXED:
                return (uint32_t)avro_schema_fixed_size(s);
        case AVRO_RECORD: {
                uint64_t n = 0;
                for (size_t i = 0; i < avro_schema_record_size(s); i++)
                        n += min_size(avro_schema_record_field_get_by_index(s, (int)i),
                                      depth + 1);
                return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
        }
        default: /* a varint, a length, a branch index or a block count */
                return 1;
        }
}

/* "int", "record dmpflow.Event", "union", ... */
static const char *describe(avro_schema_t s, char *buf, size_t size) {
        s = deref(s);
        if (is_avro_record(s) || is_avro_enum(s) || is_avro_fixed(s)) {
                const char *ns = avro_schema_namespace(s);
                snprintf(buf, size, "%s %s%s%s",
                         is_avro_record(s) ? "record" : is_avro_enum(s) ? "enum" : "fixed",
                         ns && *ns ? ns : "", ns && *ns ? "." : "", avro_schema_name(s));
                return buf;
        }
        snprintf(buf, size, "%s", avro_schema_type_name(s));
        return buf;
}

/* Named types match by unqualified name, full name, or a reader alias. */
static int names_match(compiler_t *c, avro_schema_t w, avro_schema_t r) {
        const char *wn = avro_schema_name(w), *rn = avro_schema_name(r);
        if (!wn || !rn)
                return 0;
        if (!strcmp(wn, rn))
                return 1;
        json_t *rj = dmp_schema_named_json(c->rs, r);
        if (dmp_schema_has_alias(rj, wn))
                return 1;
        const char *ns = avro_schema_namespace(w);
        if (ns && *ns) {
                char full[512];
                snprintf(full, sizeof(full), "%s.%s", ns, wn);
                return dmp_schema_has_alias(rj, full);
        }
        return 0;
}

static int promotable(avro_schema_t w, avro_schema_t r) {
        avro_type_t wt = avro_typeof(w), rt = avro_typeof(r);
        switch (wt) {
        case AVRO_INT32:
                return rt == AVRO_INT64 || rt == AVRO_FLOAT || rt == AVRO_DOUBLE;
        case AVRO_INT64:
                return rt == AVRO_FLOAT || rt == AVRO_DOUBLE;
        case AVRO_FLOAT:
                return rt == AVRO_DOUBLE;
        case AVRO_STRING:
                return rt == AVRO_BYTES;
        case AVRO_BYTES:
                return rt == AVRO_STRING;
        default:
                return 0;
        }
}

/* Does a w value match reader type r (neither a union), shallowly? */
static int matches(compiler_t *c, avro_schema_t w, avro_schema_t r, int allow_promotion) {
        w = deref(w);
        r = deref(r);
        if (avro_typeof(w) != avro_typeof(r))
                return allow_promotion && promotable(w, r);
        switch (avro_typeof(w)) {
        case AVRO_RECORD:
        case AVRO_ENUM:
                return names_match(c, w, r);
        case AVRO_FIXED:
                return names_match(c, w, r) &&
                       avro_schema_fixed_size(w) == avro_schema_fixed_size(r);
        default:
                return 1;
        }
}

/* The branch of reader union r that reads w (exact match first, then
 * promotion), or -1. */
static int reader_branch(compiler_t *c, avro_schema_t w, avro_schema_t r) {
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < avro_schema_union_size(r); i++)
                        if (matches(c, w, avro_schema_union_branch(r, (int)i), pass))
                                return (int)i;
        return -1;
}

static size_t path_push(compiler_t *c, const char *name) {
        size_t len = strlen(c->path);
        snprintf(c->path + len, sizeof(c->path) - len, "%s%s", len ? "." : "", name);
        return len;
}

static void path_pop(compiler_t *c, size_t len) {
        c->path[len] = '\0';
}

/* Emits a read of a primitive: the variant for dst (see the op enum). */
static void emit_read(compiler_t *c, uint8_t generic, uint8_t num, uint8_t time, uint8_t key,
                      uint8_t dst, uint16_t slot) {
        uint8_t code = generic;
        if (dst == DST_NUM && num)
                code = num;
        else if (dst == DST_TIME && time)
                code = time;
        else if (dst == DST_KEY && key)
                code = key;
        emit(c, code, dst, slot, 0);
}

static int emit_value(compiler_t *c, avro_schema_t w, avro_schema_t r, uint8_t dst,
                      uint16_t slot, int depth);

/* How a writer union branch b is read: *rb is the reader type (NULL when
 * skipping); returns 0, or -1 if the reader cannot read it. */
static int branch_reader(compiler_t *c, avro_schema_t b, avro_schema_t r, avro_schema_t *rb) {
        *rb = NULL;
        if (!r)
                return 0;
        if (is_avro_union(r)) {
                int i = reader_branch(c, b, r);
                if (i < 0)
                        return -1;
                *rb = deref(avro_schema_union_branch(r, i));
                return 0;
        }
        if (!matches(c, b, r, 1))
                return -1;
        *rb = r;
        return 0;
}

static int emit_union(compiler_t *c, avro_schema_t w, avro_schema_t r, uint8_t dst,
                      uint16_t slot, int depth) {
        size_t n = avro_schema_union_size(w);
        /* [null, T] / [T, null] with T primitive, both branches readable:
         * OP_OPTIONAL and T's op inline */
        if (n == 2) {
                avro_schema_t a = deref(avro_schema_union_branch(w, 0));
                avro_schema_t b = deref(avro_schema_union_branch(w, 1));
                int null_at = is_avro_null(a) ? 0 : is_avro_null(b) ? 1 : -1;
                avro_schema_t t = null_at == 0 ? b : a, rn, rt;
                if (null_at >= 0 && !is_avro_null(t) && is_avro_primitive(t) &&
                    !branch_reader(c, null_at ? b : a, r, &rn) &&
                    !branch_reader(c, t, r, &rt)) {
                        emit(c, OP_OPTIONAL, dst, slot, (uint32_t)null_at);
                        return emit_value(c, t, rt, dst, slot, depth + 1);
                }
        }
        uint32_t at = tab_alloc(c, 1 + n);
        int inline_ok = 1, readable = 0;
        c->pl->tab[at] = (uint32_t)n;
        for (size_t i = 0; i < n; i++) {
                avro_schema_t b = deref(avro_schema_union_branch(w, (int)i)), rb;
                uint32_t id;
                if (branch_reader(c, b, r, &rb)) {
                        id = fail_program(c);
                } else {
                        id = sub_program(c, b, rb, dst, slot);
                        readable = 1;
                }
                c->pl->tab[at + 1 + i] = id;
                inline_ok &= is_avro_primitive(b) || is_avro_fixed(b) || is_avro_enum(b);
        }
        if (!readable) {
                char rd[256];
                return error(c, "no branch of the writer's union can be read as %s",
                             describe(r, rd, sizeof(rd)));
        }
        emit(c, inline_ok ? OP_UNION_INLINE : OP_UNION, 0, 0, at);
        return 0;
}

static int emit_enum(compiler_t *c, avro_schema_t w, avro_schema_t r) {
        int n = avro_schema_enum_number_of_symbols(w);
        if (!r) {
                emit(c, OP_ENUM, 0, 0, (uint32_t)n);
                return 0;
        }
        json_t *rj = dmp_schema_named_json(c->rs, r);
        int has_default = json_is_string(json_object_get(rj, "default"));
        uint32_t at = tab_alloc(c, 1 + (size_t)n);
        int all = 1;
        c->pl->tab[at] = (uint32_t)n;
        for (int i = 0; i < n; i++) {
                int ok = has_default || avro_schema_enum_get_by_name(r, avro_schema_enum_get(w, i)) >= 0;
                c->pl->tab[at + 1 + i] = (uint32_t)ok;
                all &= ok;
        }
        if (all) {
                c->pl->ntab = at; /* the table is not needed */
                emit(c, OP_ENUM, 0, 0, (uint32_t)n);
        } else {
                emit(c, OP_ENUM_CHECK, 0, 0, at);
        }
        return 0;
}

/* A reader default for a needed field: the ops setting it. */
static int emit_default(compiler_t *c, const json_t *def, const dmp_need_t *nd,
                        avro_schema_t rtype) {
        if (json_is_null(def)) {
                if (nd->role == DMP_NEED_TIME)
                        return error(c, "the event time field is not in the writer schema and "
                                     "its default is null");
                if (nd->role == DMP_NEED_KEY || nd->role == DMP_NEED_LABEL)
                        emit(c, nd->role == DMP_NEED_KEY ? OP_DEFAULT_KEY : OP_DEFAULT_LABEL, 0,
                             nd->role == DMP_NEED_KEY ? 0 : (uint16_t)nd->slot,
                             add_const(c, (plan_const_t){.s = dmp_strdup(""), .len = 0}));
                return 0; /* a number: undefined */
        }
        if (nd->role == DMP_NEED_NUM && nd->decimal && json_is_string(def)) {
                /* a bytes/fixed default: one code point (0-255) per byte */
                const unsigned char *u = (const unsigned char *)json_string_value(def);
                size_t ulen = json_string_length(def), n = 0;
                unsigned char *bytes = dmp_malloc(ulen + 1);
                for (size_t i = 0; i < ulen; i++) {
                        if (u[i] < 0x80) {
                                bytes[n++] = u[i];
                        } else if ((u[i] & 0xfe) == 0xc2 && i + 1 < ulen) { /* U+0080..U+00FF */
                                bytes[n++] = (unsigned char)(((u[i] & 0x03) << 6) | (u[i + 1] & 0x3f));
                                i++;
                        } else {
                                free(bytes);
                                return error(c, "the decimal default holds a character beyond "
                                             "U+00FF (a bytes default is one code point per byte)");
                        }
                }
                double d = dmp_decimal_to_double(bytes, n, nd->scale);
                free(bytes);
                emit(c, OP_DEFAULT_NUM, 0, (uint16_t)nd->slot, add_const(c, (plan_const_t){.d = d}));
                return 0;
        }
        if (nd->role == DMP_NEED_NUM && json_is_number(def)) {
                double d = json_number_value(def);
                avro_schema_t t = deref(rtype);
                if (is_avro_union(t))
                        t = deref(avro_schema_union_branch(t, 0)); /* defaults are of branch 0 */
                if (is_avro_float(t))
                        d = (float)d;
                emit(c, OP_DEFAULT_NUM, 0, (uint16_t)nd->slot, add_const(c, (plan_const_t){.d = d}));
                return 0;
        }
        if (nd->role == DMP_NEED_TIME && json_is_integer(def)) {
                int64_t l = json_integer_value(def);
                if (nd->micros)
                        l = dmp_floor_div(l, 1000);
                else if (nd->days)
                        l *= 86400000;
                emit(c, OP_DEFAULT_TIME, 0, 0, add_const(c, (plan_const_t){.l = l}));
                return 0;
        }
        if ((nd->role == DMP_NEED_KEY || nd->role == DMP_NEED_LABEL) &&
            (json_is_string(def) || json_is_integer(def))) {
                char num[24];
                const char *s = json_string_value(def);
                size_t len;
                if (s) {
                        len = json_string_length(def);
                } else {
                        len = (size_t)snprintf(num, sizeof(num), "%lld",
                                               (long long)json_integer_value(def));
                        s = num;
                }
                emit(c, nd->role == DMP_NEED_KEY ? OP_DEFAULT_KEY : OP_DEFAULT_LABEL, 0,
                     nd->role == DMP_NEED_KEY ? 0 : (uint16_t)nd->slot,
                     add_const(c, (plan_const_t){.s = dmp_strndup(s, len), .len = len}));
                return 0;
        }
        return error(c, "not in the writer schema, and its default in the reader schema does "
                     "not suit its use as %s", nd->role == DMP_NEED_KEY ? "key"
                     : nd->role == DMP_NEED_LABEL ? "group field"
                     : nd->role == DMP_NEED_TIME ? "event time" : "a number");
}

/* The writer field that reader field ri of record r reads (by name, then
 * by the reader field's aliases), or -1. */
static int writer_field(compiler_t *c, avro_schema_t w, avro_schema_t r, int ri) {
        int wi = avro_schema_record_field_get_index(w, avro_schema_record_field_name(r, ri));
        if (wi >= 0)
                return wi;
        json_t *rf = dmp_schema_field_json(c->rs, r, ri);
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(rf, "aliases"), k, a) {
                const char *s = json_string_value(a);
                if (s && (wi = avro_schema_record_field_get_index(w, s)) >= 0)
                        return wi;
        }
        return -1;
}

/* A record, inline. needs (top level only) say what reader fields go where. */
static int emit_record(compiler_t *c, avro_schema_t w, avro_schema_t r, const dmp_need_t *needs,
                       int nneeds, int depth) {
        size_t nw = avro_schema_record_size(w);
        if (!r) {
                for (size_t i = 0; i < nw; i++) {
                        size_t mark = path_push(c, avro_schema_record_field_name(w, (int)i));
                        int rc = emit_value(c, avro_schema_record_field_get_by_index(w, (int)i),
                                            NULL, 0, 0, depth + 1);
                        path_pop(c, mark);
                        if (rc)
                                return -1;
                }
                return 0;
        }
        size_t nr = avro_schema_record_size(r);
        int *r_of_w = dmp_malloc((nw ? nw : 1) * sizeof(int));
        uint8_t *dst = dmp_calloc(nr ? nr : 1, 1);
        uint16_t *slot = dmp_calloc(nr ? nr : 1, sizeof(*slot));
        int rc = -1;
        for (size_t i = 0; i < nw; i++)
                r_of_w[i] = -1;
        for (int i = 0; i < nneeds; i++) {
                int ri = avro_schema_record_field_get_index(r, needs[i].field);
                if (needs[i].role == DMP_NEED_KEY) {
                        dst[ri] |= DST_KEY;
                } else if (needs[i].role == DMP_NEED_TIME) {
                        dst[ri] |= (uint8_t)(DST_TIME | (needs[i].micros ? DST_MICROS : 0) |
                                             (needs[i].days ? DST_DAYS : 0));
                } else { /* a number or a label: never both (dmp_plan_compile) */
                        dst[ri] |= needs[i].role == DMP_NEED_LABEL ? DST_LABEL : DST_NUM;
                        slot[ri] = (uint16_t)needs[i].slot;
                }
        }
        for (size_t ri = 0; ri < nr; ri++) {
                size_t mark = path_push(c, avro_schema_record_field_name(r, (int)ri));
                int wi = writer_field(c, w, r, (int)ri);
                if (wi >= 0) {
                        r_of_w[wi] = (int)ri;
                        path_pop(c, mark);
                        continue;
                }
                json_t *rf = dmp_schema_field_json(c->rs, r, (int)ri);
                json_t *def = json_object_get(rf, "default");
                if (!def) {
                        error(c, "not in the writer schema, and no default in the reader schema "
                              "(a field added to a schema needs a default)");
                        goto out;
                }
                for (int i = 0; i < nneeds; i++) /* a needed field: its default */
                        if (!strcmp(needs[i].field, avro_schema_record_field_name(r, (int)ri)) &&
                            emit_default(c, def, &needs[i],
                                         avro_schema_record_field_get_by_index(r, (int)ri)))
                                goto out;
                path_pop(c, mark);
        }
        for (size_t wi = 0; wi < nw; wi++) {
                int ri = r_of_w[wi];
                size_t mark = path_push(c, avro_schema_record_field_name(w, (int)wi));
                int e = emit_value(c, avro_schema_record_field_get_by_index(w, (int)wi),
                                   ri < 0 ? NULL : avro_schema_record_field_get_by_index(r, ri),
                                   ri < 0 ? 0 : dst[ri], ri < 0 ? 0 : slot[ri], depth + 1);
                path_pop(c, mark);
                if (e)
                        goto out;
        }
        rc = 0;
out:
        free(r_of_w);
        free(dst);
        free(slot);
        return rc;
}

/* Emits the ops reading one w value as reader type r (NULL: skip) into
 * dst, inline. */
static int emit_value(compiler_t *c, avro_schema_t w, avro_schema_t r, uint8_t dst,
                      uint16_t slot, int depth) {
        char wd[256], rd[256];
        w = deref(w);
        r = deref(r);
        if (depth > MAX_SCHEMA_DEPTH)
                return error(c, "the schema nests records deeper than %d", MAX_SCHEMA_DEPTH);
        if (is_avro_union(w))
                return emit_union(c, w, r, dst, slot, depth);
        if (r && is_avro_union(r)) {
                int b = reader_branch(c, w, r);
                if (b < 0)
                        return error(c, "writer type %s matches no branch of the reader's union",
                                     describe(w, wd, sizeof(wd)));
                return emit_value(c, w, avro_schema_union_branch(r, b), dst, slot, depth + 1);
        }
        if (r && !matches(c, w, r, 1)) {
                if (avro_typeof(w) == avro_typeof(r) && is_avro_fixed(w) && names_match(c, w, r))
                        return error(c, "fixed sizes differ (writer %lld, reader %lld)",
                                     (long long)avro_schema_fixed_size(w),
                                     (long long)avro_schema_fixed_size(r));
                if (avro_typeof(w) == avro_typeof(r))
                        return error(c, "names differ: writer %s, reader %s (a reader alias "
                                     "can name the writer's type)", describe(w, wd, sizeof(wd)),
                                     describe(r, rd, sizeof(rd)));
                return error(c, "writer type %s cannot be read as %s (promotions: int to long, "
                             "float or double; long to float or double; float to double; "
                             "string to bytes and back)", describe(w, wd, sizeof(wd)),
                             describe(r, rd, sizeof(rd)));
        }
        if (r && is_avro_float(r) && (is_avro_int32(w) || is_avro_int64(w)) && (dst & DST_NUM))
                dst |= DST_F32;
        switch (avro_typeof(w)) {
        case AVRO_NULL:
                emit(c, OP_NULL, dst, slot, 0);
                return 0;
        case AVRO_BOOLEAN:
                emit(c, OP_BOOL, 0, 0, 0);
                return 0;
        case AVRO_INT32:
                emit_read(c, OP_INT, OP_INT_NUM, 0, 0, dst, slot);
                return 0;
        case AVRO_INT64:
                emit_read(c, OP_LONG, OP_LONG_NUM, OP_LONG_TIME, 0, dst, slot);
                return 0;
        case AVRO_FLOAT:
                emit_read(c, OP_FLOAT, OP_FLOAT_NUM, 0, 0, dst, slot);
                return 0;
        case AVRO_DOUBLE:
                emit_read(c, OP_DOUBLE, OP_DOUBLE_NUM, 0, 0, dst, slot);
                return 0;
        case AVRO_STRING:
        case AVRO_BYTES:
                if (dst & DST_NUM) /* a decimal (type_ok) */
                        emit(c, OP_DECIMAL, DST_NUM, slot, decimal_const(c, slot));
                else if (dst & DST_LABEL)
                        emit(c, OP_STRING_DST, dst, slot, 0);
                else
                        emit_read(c, OP_BYTES, 0, 0, OP_STRING_KEY, dst, slot);
                return 0;
        case AVRO_FIXED: {
                int64_t n = avro_schema_fixed_size(w);
                if (n < 0 || n > INT32_MAX)
                        return error(c, "fixed %s: size %lld too large", avro_schema_name(w),
                                     (long long)n);
                if (dst & DST_NUM) {
                        uint32_t at = tab_alloc(c, 2);
                        c->pl->tab[at] = (uint32_t)n;
                        c->pl->tab[at + 1] = decimal_const(c, slot);
                        emit(c, OP_DECIMAL_FIXED, DST_NUM, slot, at);
                } else {
                        emit(c, OP_FIXED, 0, 0, (uint32_t)n);
                }
                return 0;
        }
        case AVRO_ENUM:
                return emit_enum(c, w, r);
        case AVRO_RECORD:
                return emit_record(c, w, r, NULL, 0, depth);
        case AVRO_ARRAY:
        case AVRO_MAP: {
                int arr = is_avro_array(w);
                avro_schema_t item = arr ? avro_schema_array_items(w) : avro_schema_map_values(w);
                avro_schema_t ritem = !r ? NULL : arr ? avro_schema_array_items(r)
                                                      : avro_schema_map_values(r);
                uint32_t at = tab_alloc(c, 2);
                size_t mark = path_push(c, arr ? "[]" : "{}");
                uint32_t id = sub_program(c, item, ritem, 0, 0);
                path_pop(c, mark);
                c->pl->tab[at] = id;
                /* a map entry also has its key: at least one byte */
                c->pl->tab[at + 1] = arr ? min_size(item, depth + 1) : 1;
                emit(c, arr ? OP_ARRAY : OP_MAP, 0, 0, at);
                return 0;
        }
        default:
                break;
        }
        return error(c, "unsupported Avro type %s", avro_schema_type_name(w));
}

/* Is s acceptable for role, or a union of null and acceptable branches
 * (at least one not null)? */
static int type_ok(avro_schema_t s, const dmp_need_t *nd, int in_union) {
        dmp_need_role_t role = nd->role;
        s = deref(s);
        if (is_avro_union(s)) {
                if (in_union)
                        return 0;
                int some = 0;
                for (size_t i = 0; i < avro_schema_union_size(s); i++) {
                        avro_schema_t b = deref(avro_schema_union_branch(s, (int)i));
                        if (is_avro_null(b))
                                continue;
                        if (!type_ok(b, nd, 1))
                                return 0;
                        some = 1;
                }
                return some;
        }
        switch (role) {
        case DMP_NEED_KEY:
        case DMP_NEED_LABEL:
                return is_avro_string(s) || is_avro_int32(s) || is_avro_int64(s);
        case DMP_NEED_TIME:
                return is_avro_int32(s) || is_avro_int64(s);
        case DMP_NEED_NUM:
                if (nd->decimal)
                        return is_avro_bytes(s) || is_avro_fixed(s);
                return is_avro_int32(s) || is_avro_int64(s) || is_avro_float(s) ||
                       is_avro_double(s);
        }
        return 0;
}

static const char *const role_wants[] = {"string, int or long", "long or int",
                                         "int, long, float, double, or bytes/fixed with logicalType decimal",
                                         "string, int or long"};

static void compiler_free(compiler_t *c) {
        for (size_t i = 0; i < c->nqueue; i++)
                free(c->queue[i].path);
        free(c->queue);
        free(c->memo);
}

dmp_plan_t *dmp_plan_compile(const dmp_schema_t *writer, const dmp_schema_t *reader,
                             const dmp_need_t *needs, int nneeds, char *errstr,
                             size_t errstr_size) {
        if (!reader)
                reader = writer;
        avro_schema_t w = deref(writer->avro), r = deref(reader->avro);
        compiler_t c = {.pl = dmp_calloc(1, sizeof(dmp_plan_t)), .ws = writer, .rs = reader,
                        .fail_id = -1, .errstr = errstr, .errstr_size = errstr_size};
        char wd[256], rd[256];
        if (!is_avro_record(r) || !is_avro_record(w)) {
                snprintf(errstr, errstr_size, "the input schema must be a record");
                goto fail;
        }
        if (!names_match(&c, w, r)) {
                error(&c, "record names differ: writer %s, reader %s (a reader alias can name "
                      "the writer's record)", describe(w, wd, sizeof(wd)),
                      describe(r, rd, sizeof(rd)));
                goto fail;
        }
        for (int i = 0; i < nneeds; i++) {
                const dmp_need_t *nd = &needs[i];
                int idx = avro_schema_record_field_get_index(r, nd->field);
                if (idx < 0) {
                        snprintf(errstr, errstr_size, "field \"%s\" is not in the input schema",
                                 nd->field);
                        goto fail;
                }
                avro_schema_t fs = avro_schema_record_field_get_by_index(r, idx);
                if (!type_ok(fs, nd, 0)) {
                        snprintf(errstr, errstr_size,
                                 "field \"%s\" has type %s; expected %s (or a nullable union of it)",
                                 nd->field, avro_schema_type_name(deref(fs)),
                                 role_wants[nd->role]);
                        goto fail;
                }
                if (nd->role == DMP_NEED_NUM && (nd->slot < 0 || nd->slot >= DMP_MAX_NUM_FIELDS)) {
                        snprintf(errstr, errstr_size, "field \"%s\": slot %d out of range",
                                 nd->field, nd->slot);
                        goto fail;
                }
                if (nd->role == DMP_NEED_NUM)
                        c.decimal_scale[nd->slot] = nd->decimal ? nd->scale : -1;
                if (nd->role == DMP_NEED_LABEL && (nd->slot < 0 || nd->slot >= DMP_MAX_LABELS)) {
                        snprintf(errstr, errstr_size, "field \"%s\": label %d out of range",
                                 nd->field, nd->slot);
                        goto fail;
                }
                for (int j = 0; j < i; j++)
                        if (!strcmp(needs[j].field, nd->field) &&
                            ((needs[j].role == DMP_NEED_NUM && nd->role == DMP_NEED_LABEL) ||
                             (needs[j].role == DMP_NEED_LABEL && nd->role == DMP_NEED_NUM))) {
                                snprintf(errstr, errstr_size, "field \"%s\" cannot be both "
                                         "a group field and a measure's input", nd->field);
                                goto fail;
                        }
        }
        /* program 0: the top-level record, then the queued sub-programs */
        GROW(c.pl->starts, c.pl->nsubs, c.pl->subs_cap);
        c.pl->starts[c.pl->nsubs++] = 0;
        if (emit_record(&c, w, r, needs, nneeds, 0))
                goto fail;
        emit(&c, OP_END, 0, 0, 0);
        for (size_t q = 0; q < c.nqueue; q++) { /* the queue grows as we go */
                pending_t pd = c.queue[q];
                c.pl->starts[pd.id] = (uint32_t)c.pl->nops;
                snprintf(c.path, sizeof(c.path), "%s", pd.path);
                if (!pd.w)
                        emit(&c, OP_FAIL, 0, 0, DMP_DECODE_RESOLVE);
                else if (emit_value(&c, pd.w, pd.r, pd.dst, pd.slot, 1))
                        goto fail;
                emit(&c, OP_END, 0, 0, 0);
        }
        for (size_t i = 0; i < c.pl->nops; i++) {
                const op_t *op = &c.pl->ops[i];
                if (op->code == OP_FLOAT_NUM || op->code == OP_DOUBLE_NUM ||
                    op->code == OP_DECIMAL || op->code == OP_DECIMAL_FIXED ||
                    op->code == OP_DEFAULT_NUM)
                        c.pl->real_slots |= 1ULL << op->slot;
        }
        compiler_free(&c);
        return c.pl;
fail:
        compiler_free(&c);
        dmp_plan_destroy(c.pl);
        return NULL;
}
