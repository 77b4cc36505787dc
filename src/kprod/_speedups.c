/* kprod._speedups: compiled twins of the producer's per-record hot path.
 *
 * Optional: kprod works without it (kprod._native falls back to the pure-Python
 * reference code when this module cannot be imported or KPROD_NO_SPEEDUPS=1).
 * Every function here has a Python twin that is the reference, and the tests
 * compare both byte for byte:
 *
 *   murmur2(data) -> int                 kprod.partitioner.murmur2 (Java's signed result)
 *   partitions_for_keys(keys, n) -> list kprod.partitioner.partitions_for_keys
 *   scan_bytes(seq) -> (int, int)        producer.fastpath.scan_bytes
 *   RecordsCore                          base of protocol.records.RecordBatchBuilder:
 *                                        its hot state and append() (twin: _RecordsCore)
 *   FutureCore                           base of producer.batch.RecordFuture (its fields)
 *   append_record(...)                   producer.fastpath.append_record
 *   append_many(...)                     producer.fastpath.append_many
 *   SendPath                             Producer.send + RecordAccumulator.append, common case
 *   SendCore                             base of kprod.Producer: send() without a Python frame
 *                                        (twin: producer.fastpath._SendCorePy)
 *
 * _speedups_io.c adds the I/O thread's GIL-keeping epoll calls (no Python twin:
 * kprod.net.poller falls back to selectors).
 *
 * The record layout is Kafka's record v2: length, attributes, timestampDelta,
 * offsetDelta, key, value, headers, every integer a ZigZag varint.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "_speedups_io.h"

/* Constants defined once in Python and handed over by configure() at import
 * (-1 until then; everything that uses one checks it was given):
 *   batch_header_size  protocol.records.BATCH_HEADER_SIZE (61)
 *   record_overhead    producer.fastpath.RECORD_OVERHEAD: the accumulator's upper
 *                      bound of a record's framing bytes beyond key, value, headers
 *   header_overhead    producer.fastpath.HEADER_OVERHEAD: a header's estimate is
 *                      key chars * 3 (UTF-8 upper bound) + value + this */
static Py_ssize_t batch_header_size = -1, record_overhead = -1, header_overhead = -1;
#define STACK_HEADERS 8

static int need_configured(int records_only)
{
    if (batch_header_size < 0 || (!records_only && (record_overhead < 0 || header_overhead < 0))) {
        PyErr_SetString(PyExc_RuntimeError,
                        "kprod._speedups is not configured: import kprod.producer.fastpath (it calls configure())");
        return -1;
    }
    return 0;
}

/* configure(batch_header_size=..., record_overhead=..., header_overhead=...): any of them. */
static PyObject *py_configure(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"batch_header_size", "record_overhead", "header_overhead", NULL};
    Py_ssize_t values[3] = {-1, -1, -1};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$nnn:configure", kwlist, &values[0], &values[1], &values[2]))
        return NULL;
    Py_ssize_t *targets[3] = {&batch_header_size, &record_overhead, &header_overhead};
    for (int i = 0; i < 3; i++) {
        if (values[i] >= 0)
            *targets[i] = values[i];
    }
    Py_RETURN_NONE;
}

static PyObject *str_builder, *str_futures, *str_full, *str_callbacks;

/* -- varints ------------------------------------------------------------------- */

static inline uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

static inline Py_ssize_t uvarint_size(uint64_t v)
{
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline char *put_uvarint(char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

/* -- murmur2 ------------------------------------------------------------------- */

static uint32_t murmur2_raw(const unsigned char *data, Py_ssize_t length)
{
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28cU ^ (uint32_t)length;
    Py_ssize_t words = length >> 2, i;
    for (i = 0; i < words; i++) {
        const unsigned char *d = data + (i << 2);
        uint32_t k = (uint32_t)d[0] | ((uint32_t)d[1] << 8) | ((uint32_t)d[2] << 16) | ((uint32_t)d[3] << 24);
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    const unsigned char *tail = data + (words << 2);
    switch (length & 3) {
    case 3:
        h ^= (uint32_t)tail[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)tail[1] << 8;
        /* fall through */
    case 1:
        h ^= (uint32_t)tail[0];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

static PyObject *py_murmur2(PyObject *module, PyObject *data)
{
    uint32_t h;
    if (PyBytes_CheckExact(data)) {
        h = murmur2_raw((const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        h = murmur2_raw((const unsigned char *)view.buf, view.len);
        PyBuffer_Release(&view);
    }
    return PyLong_FromLong((long)(int32_t)h);
}

static PyObject *py_partitions_for_keys(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "partitions_for_keys(keys, num_partitions) takes 2 arguments");
        return NULL;
    }
    if (!PyLong_Check(args[1])) {
        PyErr_Format(PyExc_TypeError, "num_partitions must be an int, got %s", Py_TYPE(args[1])->tp_name);
        return NULL;
    }
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (overflow || n < 1 || n > INT32_MAX) { /* Kafka's partition numbers are int32 */
        PyErr_Format(PyExc_ValueError, "num_partitions must be from 1 to 2**31 - 1, got %R", args[1]);
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "keys must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *out = PyList_New(count);
    if (out == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = items[i];
        long p;
        if (key == Py_None) {
            p = -1;
        } else if (PyBytes_CheckExact(key)) {
            p = (long)((murmur2_raw((const unsigned char *)PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)) & 0x7fffffffU) % (uint32_t)n);
        } else {
            Py_buffer view;
            if (PyObject_GetBuffer(key, &view, PyBUF_SIMPLE) < 0)
                goto fail;
            p = (long)((murmur2_raw((const unsigned char *)view.buf, view.len) & 0x7fffffffU) % (uint32_t)n);
            PyBuffer_Release(&view);
        }
        PyObject *value = PyLong_FromLong(p);
        if (value == NULL)
            goto fail;
        PyList_SET_ITEM(out, i, value);
    }
    Py_DECREF(seq);
    return out;
fail:
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

/* scan_bytes(seq) -> (index of the first item neither bytes nor None or -1, largest length) */
static PyObject *py_scan_bytes(PyObject *module, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "expected a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t found = -1, longest = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = items[i];
        if (PyBytes_CheckExact(item)) {
            if (PyBytes_GET_SIZE(item) > longest)
                longest = PyBytes_GET_SIZE(item);
        } else if (item != Py_None) {
            found = i;
            break;
        }
    }
    Py_DECREF(seq);
    return Py_BuildValue("nn", found, longest);
}

/* -- byte arguments -------------------------------------------------------------- */

typedef struct {
    const char *ptr;
    Py_ssize_t len; /* -1: null */
    int has_view;
    Py_buffer view;
} bytesarg;

static inline void bytesarg_release(bytesarg *b)
{
    if (b->has_view) {
        PyBuffer_Release(&b->view);
        b->has_view = 0;
    }
}

/* bytes, any contiguous buffer, or None; what names the argument in the error. */
static int bytesarg_get(PyObject *obj, bytesarg *out, const char *what)
{
    out->has_view = 0;
    if (obj == Py_None) {
        out->ptr = NULL;
        out->len = -1;
        return 0;
    }
    if (PyBytes_CheckExact(obj)) {
        out->ptr = PyBytes_AS_STRING(obj);
        out->len = PyBytes_GET_SIZE(obj);
        return 0;
    }
    if (PyObject_CheckBuffer(obj)) {
        if (PyObject_GetBuffer(obj, &out->view, PyBUF_SIMPLE) < 0)
            return -1;
        out->has_view = 1;
        out->ptr = (const char *)out->view.buf;
        out->len = out->view.len;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "record %s must be bytes or None, got %s", what, Py_TYPE(obj)->tp_name);
    return -1;
}

typedef struct {
    const char *key;
    Py_ssize_t key_len;
    bytesarg value;
} header_t;

/* Validated headers of one record, with their encoded size and the accumulator's estimate. */
typedef struct {
    PyObject *seq; /* PySequence_Fast of the headers, or NULL for none */
    Py_ssize_t count;
    header_t *items;
    header_t stack[STACK_HEADERS];
    Py_ssize_t encoded;  /* bytes of the header count and the headers */
    Py_ssize_t estimate; /* sum of len(key) * 3 + len(value) + 10 */
} headers_t;

static void headers_release(headers_t *h)
{
    if (h->items != NULL) {
        for (Py_ssize_t i = 0; i < h->count; i++)
            bytesarg_release(&h->items[i].value);
        if (h->items != h->stack)
            PyMem_Free(h->items);
        h->items = NULL;
    }
    Py_CLEAR(h->seq);
}

static int headers_get(PyObject *obj, headers_t *h)
{
    h->seq = NULL;
    h->items = NULL;
    h->count = 0;
    h->encoded = 1; /* varint 0 */
    h->estimate = 0;
    if (obj == NULL || obj == Py_None)
        return 0;
    if (PyList_CheckExact(obj) || PyTuple_CheckExact(obj)) {
        if (PySequence_Fast_GET_SIZE(obj) == 0)
            return 0;
        Py_INCREF(obj);
        h->seq = obj;
    } else {
        if (PyObject_Length(obj) < 0) /* Python: len(headers) */
            return -1;
        h->seq = PySequence_Fast(obj, "record headers must be a sequence of (str, bytes) pairs");
        if (h->seq == NULL)
            return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(h->seq);
    if (n == 0)
        return 0;
    if (n <= STACK_HEADERS) {
        h->items = h->stack;
    } else {
        h->items = PyMem_Malloc(sizeof(header_t) * (size_t)n);
        if (h->items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    PyObject **items = PySequence_Fast_ITEMS(h->seq);
    Py_ssize_t encoded = uvarint_size(zigzag(n));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        if (!(PyTuple_Check(item) || PyList_Check(item)) || PySequence_Fast_GET_SIZE(item) != 2) {
            PyErr_Format(PyExc_TypeError, "each header must be a (str key, bytes value) pair, got %R", item);
            return -1;
        }
        PyObject *hkey = PySequence_Fast_GET_ITEM(item, 0);
        PyObject *hvalue = PySequence_Fast_GET_ITEM(item, 1);
        if (!PyUnicode_Check(hkey)) {
            PyErr_Format(PyExc_TypeError, "header key must be str, got %s: %R", Py_TYPE(hkey)->tp_name, hkey);
            return -1;
        }
        header_t *out = &h->items[i];
        out->key = PyUnicode_AsUTF8AndSize(hkey, &out->key_len);
        if (out->key == NULL)
            return -1;
        if (hvalue != Py_None && !PyBytes_CheckExact(hvalue) && !PyObject_CheckBuffer(hvalue)) {
            PyErr_Format(PyExc_TypeError, "value of header %R must be bytes or None, got %s", hkey,
                         Py_TYPE(hvalue)->tp_name);
            return -1;
        }
        if (bytesarg_get(hvalue, &out->value, "header value") < 0)
            return -1;
        h->count = i + 1; /* so headers_release releases what was taken */
        encoded += uvarint_size(zigzag(out->key_len)) + out->key_len;
        encoded += out->value.len < 0 ? 1 : uvarint_size(zigzag(out->value.len)) + out->value.len;
        h->estimate += PyUnicode_GET_LENGTH(hkey) * 3 + (out->value.len > 0 ? out->value.len : 0) + header_overhead;
    }
    h->encoded = encoded;
    return 0;
}

/* -- RecordsCore: the record batch builder's hot state ------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *buf;            /* bytearray of the records section; NULL once closed */
    PyObject *requested_base; /* base timestamp given at construction (int or None) */
    long long base_ts;
    long long max_ts;
    Py_ssize_t count;
    Py_ssize_t size; /* batch header + records */
    Py_ssize_t max_size;
    Py_ssize_t max_record; /* largest record appended (bytes with its length), for metrics */
    int has_base;
} RecordsCore;

static PyTypeObject RecordsCore_Type;

static int records_init(RecordsCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"base_timestamp", "max_size", NULL};
    PyObject *base = Py_None, *max_size = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:RecordsCore", kwlist, &base, &max_size))
        return -1;
    if (need_configured(1) < 0)
        return -1;
    self->has_base = 0;
    self->base_ts = 0;
    if (base != Py_None) {
        if (!PyLong_Check(base)) {
            PyErr_Format(PyExc_TypeError, "base_timestamp must be an int or None, got %s", Py_TYPE(base)->tp_name);
            return -1;
        }
        int overflow = 0;
        self->base_ts = PyLong_AsLongLongAndOverflow(base, &overflow);
        if (overflow) {
            PyErr_Format(PyExc_ValueError, "base_timestamp %R does not fit a signed 64-bit int", base);
            return -1;
        }
        if (self->base_ts == -1 && PyErr_Occurred())
            return -1;
        self->has_base = 1;
    }
    self->max_record = 0;
    if (max_size == Py_None) {
        self->max_size = PY_SSIZE_T_MAX;
    } else {
        self->max_size = PyLong_AsSsize_t(max_size);
        if (self->max_size == -1 && PyErr_Occurred())
            return -1;
    }
    Py_INCREF(base);
    Py_XSETREF(self->requested_base, base);
    Py_XSETREF(self->buf, PyByteArray_FromStringAndSize(NULL, 0));
    if (self->buf == NULL)
        return -1;
    self->max_ts = INT64_MIN;
    self->count = 0;
    self->size = batch_header_size;
    return 0;
}

static void records_dealloc(RecordsCore *self)
{
    Py_CLEAR(self->buf);
    Py_CLEAR(self->requested_base);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A record timestamp as a signed 64-bit int (TypeError / ValueError otherwise). */
static int get_timestamp(PyObject *timestamp, long long *out)
{
    if (!PyLong_Check(timestamp)) {
        PyErr_Format(PyExc_TypeError, "record timestamp must be an int (milliseconds), got %s",
                     Py_TYPE(timestamp)->tp_name);
        return -1;
    }
    int overflow = 0;
    *out = PyLong_AsLongLongAndOverflow(timestamp, &overflow);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    if (overflow) {
        PyErr_Format(PyExc_ValueError, "record timestamp %R does not fit a Kafka varlong (signed 64-bit)", timestamp);
        return -1;
    }
    return 0;
}

static int check_open(RecordsCore *self)
{
    if (self->buf == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "record batch is closed: no record can be appended after close() or build()");
        return -1;
    }
    return 0;
}

/* Encode one record; returns the bytes added, 0 if max_size refused it, -1 on error. */
static Py_ssize_t records_encode(RecordsCore *self, long long ts, bytesarg *key, bytesarg *value, headers_t *headers)
{
    if (check_open(self) < 0)
        return -1;
    long long base = self->has_base ? self->base_ts : ts;
    long long delta;
    if (__builtin_sub_overflow(ts, base, &delta)) {
        PyErr_Format(PyExc_ValueError,
                     "value %lld - %lld (timestamp minus the batch's base timestamp) does not fit a Kafka varlong "
                     "(signed 64-bit)", ts, base);
        return -1;
    }
    uint64_t zdelta = zigzag(delta);
    uint64_t zcount = zigzag((int64_t)self->count);
    Py_ssize_t body = 1 + uvarint_size(zdelta) + uvarint_size(zcount);
    body += key->len < 0 ? 1 : uvarint_size(zigzag(key->len)) + key->len;
    body += value->len < 0 ? 1 : uvarint_size(zigzag(value->len)) + value->len;
    body += headers->encoded;
    uint64_t zbody = zigzag(body);
    Py_ssize_t added = uvarint_size(zbody) + body;
    Py_ssize_t size = self->size + added;
    if (size > self->max_size && self->count)
        return 0;
    Py_ssize_t old = PyByteArray_GET_SIZE(self->buf);
    if (PyByteArray_Resize(self->buf, old + added) < 0) /* over-allocates by 1/8: amortized */
        return -1;
    char *p = PyByteArray_AS_STRING(self->buf) + old;
    p = put_uvarint(p, zbody);
    *p++ = 0; /* attributes */
    p = put_uvarint(p, zdelta);
    p = put_uvarint(p, zcount);
    if (key->len < 0) {
        *p++ = 1;
    } else {
        p = put_uvarint(p, zigzag(key->len));
        memcpy(p, key->ptr, (size_t)key->len);
        p += key->len;
    }
    if (value->len < 0) {
        *p++ = 1;
    } else {
        p = put_uvarint(p, zigzag(value->len));
        memcpy(p, value->ptr, (size_t)value->len);
        p += value->len;
    }
    p = put_uvarint(p, zigzag(headers->count));
    for (Py_ssize_t i = 0; i < headers->count; i++) {
        header_t *h = &headers->items[i];
        p = put_uvarint(p, zigzag(h->key_len));
        memcpy(p, h->key, (size_t)h->key_len);
        p += h->key_len;
        if (h->value.len < 0) {
            *p++ = 1;
        } else {
            p = put_uvarint(p, zigzag(h->value.len));
            memcpy(p, h->value.ptr, (size_t)h->value.len);
            p += h->value.len;
        }
    }
    if (!self->has_base) {
        self->base_ts = ts;
        self->has_base = 1;
    }
    self->count++;
    self->size = size;
    if (added > self->max_record)
        self->max_record = added;
    if (ts > self->max_ts)
        self->max_ts = ts;
    return added;
}

/* Takes key, value and headers (validated), encodes, releases them. */
static Py_ssize_t records_append_objects(RecordsCore *self, PyObject *timestamp, PyObject *key, PyObject *value,
                                         PyObject *headers)
{
    bytesarg k, v;
    headers_t h;
    Py_ssize_t added = -1;
    long long ts;
    if (check_open(self) < 0 || get_timestamp(timestamp, &ts) < 0)
        return -1;
    if (bytesarg_get(key, &k, "key") < 0)
        return -1;
    if (bytesarg_get(value, &v, "value") < 0) {
        bytesarg_release(&k);
        return -1;
    }
    if (headers_get(headers, &h) == 0)
        added = records_encode(self, ts, &k, &v, &h);
    headers_release(&h);
    bytesarg_release(&k);
    bytesarg_release(&v);
    return added;
}

static PyObject *records_append(RecordsCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"timestamp", "key", "value", "headers"};
    PyObject *argv[4] = {NULL, NULL, NULL, Py_None};
    if (nargs > 4) {
        PyErr_Format(PyExc_TypeError, "append() takes at most 4 arguments (%zd given)", nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        argv[i] = args[i];
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t j = 0; j < nkw; j++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, j);
            int slot = -1;
            for (int s = 0; s < 4; s++) {
                if (PyUnicode_CompareWithASCIIString(name, names[s]) == 0) {
                    slot = s;
                    break;
                }
            }
            if (slot < 0) {
                PyErr_Format(PyExc_TypeError, "append() got an unexpected keyword argument %R", name);
                return NULL;
            }
            if (slot < nargs) {
                PyErr_Format(PyExc_TypeError, "append() got multiple values for argument %R", name);
                return NULL;
            }
            argv[slot] = args[nargs + j];
        }
    }
    for (int s = 0; s < 3; s++) {
        if (argv[s] == NULL) {
            PyErr_Format(PyExc_TypeError, "append() missing required argument '%s'", names[s]);
            return NULL;
        }
    }
    Py_ssize_t added = records_append_objects(self, argv[0], argv[1], argv[2], argv[3]);
    if (added < 0)
        return NULL;
    return PyLong_FromSsize_t(added);
}

static PyObject *records_get_buf(RecordsCore *self, void *closure)
{
    PyObject *buf = self->buf ? self->buf : Py_None;
    Py_INCREF(buf);
    return buf;
}

static int records_set_buf(RecordsCore *self, PyObject *value, void *closure)
{
    if (value == NULL || value == Py_None) {
        Py_CLEAR(self->buf);
        return 0;
    }
    if (!PyByteArray_CheckExact(value)) {
        PyErr_SetString(PyExc_TypeError, "_buf must be a bytearray or None");
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(self->buf, value);
    return 0;
}

static PyObject *records_get_base(RecordsCore *self, void *closure)
{
    if (!self->has_base)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(self->base_ts);
}

static int records_set_base(RecordsCore *self, PyObject *value, void *closure)
{
    if (value == NULL || value == Py_None) {
        self->has_base = 0;
        return 0;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow) {
        PyErr_Format(PyExc_ValueError, "base timestamp %R does not fit a signed 64-bit int", value);
        return -1;
    }
    self->base_ts = v;
    self->has_base = 1;
    return 0;
}

static PyMethodDef records_methods[] = {
    {"append", (PyCFunction)(void (*)(void))records_append, METH_FASTCALL | METH_KEYWORDS,
     "append(timestamp, key, value, headers=None) -> bytes added (0: refused by max_size)"},
    {NULL},
};

static PyMemberDef records_members[] = {
    {"_count", T_PYSSIZET, offsetof(RecordsCore, count), 0, NULL},
    {"_size", T_PYSSIZET, offsetof(RecordsCore, size), 0, NULL},
    {"_max_size", T_PYSSIZET, offsetof(RecordsCore, max_size), 0, NULL},
    {"max_record_size", T_PYSSIZET, offsetof(RecordsCore, max_record), READONLY,
     "The largest record appended, in bytes as encoded (with its length prefix)."},
    {"_max_ts", T_LONGLONG, offsetof(RecordsCore, max_ts), 0, NULL},
    {"_requested_base", T_OBJECT, offsetof(RecordsCore, requested_base), 0, NULL},
    {NULL},
};

static PyGetSetDef records_getset[] = {
    {"_buf", (getter)records_get_buf, (setter)records_set_buf, NULL, NULL},
    {"_base_ts", (getter)records_get_base, (setter)records_set_base, NULL, NULL},
    {NULL},
};

static PyTypeObject RecordsCore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kprod._speedups.RecordsCore",
    .tp_basicsize = sizeof(RecordsCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A record batch's records section and counters (compiled twin of records._RecordsCore).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)records_init,
    .tp_dealloc = (destructor)records_dealloc,
    .tp_methods = records_methods,
    .tp_members = records_members,
    .tp_getset = records_getset,
};

/* -- FutureCore: the fields of a record future ---------------------------------------- */

/* A future reaches its batch through a weak reference while the batch is pending
 * (``ref``), and holds it strongly (``batch``) once the batch completed
 * (hold_batch(), called by ProducerBatch._finish, which then drops its futures
 * list). The pending batch holds its futures (batch.futures, the callback list),
 * so a strong reference back would make a cycle until completion; with the weak
 * one no future is ever in a cycle, and a batch that never completes (a forked
 * child's) is freed by reference counting with its futures. That lets the
 * compiled append leave futures untracked by the cycle collector, whose scans of
 * every pending future cost ~0.3 µs per record. ``_batch`` reads whichever is
 * set (None once a never-completed batch is gone); assigning it (a split moves
 * futures to the new, pending batches) stores a weak reference. */
typedef struct {
    PyObject_HEAD
    PyObject *ref;   /* weakref to the pending batch */
    PyObject *batch; /* the completed batch, or NULL */
    Py_ssize_t index;
    long long timestamp;
    Py_ssize_t key_size;
    Py_ssize_t value_size;
} FutureCore;

static PyTypeObject FutureCore_Type;

static int future_set_batch(FutureCore *self, PyObject *batch, void *closure)
{
    if (batch == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a record future's batch cannot be deleted");
        return -1;
    }
    PyObject *ref = PyWeakref_NewRef(batch, NULL);
    if (ref == NULL)
        return -1;
    Py_XSETREF(self->ref, ref);
    Py_CLEAR(self->batch);
    return 0;
}

static PyObject *future_get_batch(FutureCore *self, void *closure)
{
    PyObject *batch = self->batch;
    if (batch == NULL)
        batch = self->ref != NULL ? PyWeakref_GetObject(self->ref) : Py_None; /* borrowed; None if gone */
    Py_INCREF(batch);
    return batch;
}

static int future_init(FutureCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"batch", "index", "timestamp", "key_size", "value_size", NULL};
    PyObject *batch;
    Py_ssize_t index, key_size, value_size;
    long long timestamp;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OnLnn:RecordFuture", kwlist, &batch, &index, &timestamp,
                                     &key_size, &value_size))
        return -1;
    if (future_set_batch(self, batch, NULL) < 0)
        return -1;
    self->index = index;
    self->timestamp = timestamp;
    self->key_size = key_size;
    self->value_size = value_size;
    return 0;
}

static int future_traverse(FutureCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->ref);
    Py_VISIT(self->batch);
    return 0;
}

static int future_clear(FutureCore *self)
{
    Py_CLEAR(self->ref);
    Py_CLEAR(self->batch);
    return 0;
}

static void future_dealloc(FutureCore *self)
{
    PyObject_GC_UnTrack(self);
    future_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef future_members[] = {
    {"_index", T_PYSSIZET, offsetof(FutureCore, index), 0, NULL},
    {"_timestamp", T_LONGLONG, offsetof(FutureCore, timestamp), 0, NULL},
    {"_key_size", T_PYSSIZET, offsetof(FutureCore, key_size), 0, NULL},
    {"_value_size", T_PYSSIZET, offsetof(FutureCore, value_size), 0, NULL},
    {NULL},
};

static PyGetSetDef future_getset[] = {
    {"_batch", (getter)future_get_batch, (setter)future_set_batch,
     "The record's batch (None if it was dropped before completing); assigning stores a weak reference.", NULL},
    {NULL},
};

static PyTypeObject FutureCore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kprod._speedups.FutureCore",
    .tp_basicsize = sizeof(FutureCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The fields of a record future (compiled twin of batch._FutureCore).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)future_init,
    .tp_dealloc = (destructor)future_dealloc,
    .tp_traverse = (traverseproc)future_traverse,
    .tp_clear = (inquiry)future_clear,
    .tp_members = future_members,
    .tp_getset = future_getset,
};

static int check_future_type(PyObject *type)
{
    if (!PyType_Check(type) || !PyType_IsSubtype((PyTypeObject *)type, &FutureCore_Type)) {
        PyErr_SetString(PyExc_TypeError, "future_type must be a subclass of kprod._speedups.FutureCore");
        return -1;
    }
    return 0;
}

static PyObject *new_future(PyTypeObject *type, PyObject *batch, Py_ssize_t index, long long timestamp,
                            Py_ssize_t key_size, Py_ssize_t value_size)
{
    PyObject *ref = PyWeakref_NewRef(batch, NULL); /* the batch's shared plain weakref, made once */
    if (ref == NULL)
        return NULL;
    FutureCore *f = (FutureCore *)type->tp_alloc(type, 0);
    if (f == NULL) {
        Py_DECREF(ref);
        return NULL;
    }
    /* Not tracked by the cycle collector: it is in no cycle (see FutureCore). */
    PyObject_GC_UnTrack(f);
    f->ref = ref;
    f->index = index;
    f->timestamp = timestamp;
    f->key_size = key_size;
    f->value_size = value_size;
    return (PyObject *)f;
}

/* hold_batch(futures, batch): each future holds ``batch`` strongly (it completed). */
static PyObject *py_hold_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "hold_batch(futures: list, batch)");
        return NULL;
    }
    PyObject *futures = args[0], *batch = args[1];
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(futures); i++) {
        PyObject *item = PyList_GET_ITEM(futures, i);
        if (!PyObject_TypeCheck(item, &FutureCore_Type)) {
            PyErr_SetString(PyExc_TypeError, "hold_batch(): futures must be record futures");
            return NULL;
        }
        Py_INCREF(batch);
        Py_XSETREF(((FutureCore *)item)->batch, batch);
    }
    Py_RETURN_NONE;
}

/* -- the accumulator's appends ---------------------------------------------------------- */

static RecordsCore *batch_builder(PyObject *batch)
{
    PyObject *builder = PyObject_GetAttr(batch, str_builder);
    if (builder == NULL)
        return NULL;
    if (!PyObject_TypeCheck(builder, &RecordsCore_Type)) {
        PyErr_SetString(PyExc_TypeError, "the batch's builder is not a compiled RecordBatchBuilder");
        Py_DECREF(builder);
        return NULL;
    }
    return (RecordsCore *)builder;
}

/* One record's arguments, checked and converted, with its estimate against
 * batch.size: everything record_commit needs, taken before anything changes. */
typedef struct {
    long long ts;
    bytesarg k, v;
    headers_t h;
    Py_ssize_t estimate;
} record_t;

static void record_release(record_t *r)
{
    headers_release(&r->h);
    bytesarg_release(&r->k);
    bytesarg_release(&r->v);
}

/* 0, or -1 with the error (release with record_release either way). */
static int record_prepare(record_t *r, PyObject *timestamp, PyObject *key, PyObject *value, PyObject *headers)
{
    r->k.has_view = r->v.has_view = 0;
    r->h.seq = NULL;
    r->h.items = NULL;
    r->h.count = 0;
    if (get_timestamp(timestamp, &r->ts) < 0 || bytesarg_get(key, &r->k, "key") < 0
        || bytesarg_get(value, &r->v, "value") < 0 || headers_get(headers, &r->h) < 0)
        return -1;
    r->estimate = record_overhead + (r->k.len > 0 ? r->k.len : 0) + (r->v.len > 0 ? r->v.len : 0) + r->h.estimate;
    return 0;
}

/* Remove a list's last item (undo of an append: shrinking a list by one does not fail). */
static void list_pop_last(PyObject *list)
{
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    Py_ssize_t n = PyList_GET_SIZE(list);
    if (n > 0 && PyList_SetSlice(list, n - 1, n, NULL) < 0)
        PyErr_Clear();
    PyErr_Restore(exc_type, exc_value, exc_tb);
}

/* A step after the record is in its batch (SendPath's sticky bookkeeping): 0, or -1
 * with an error and its own changes undone; record_commit then takes the record out. */
typedef int (*commit_hook)(void *context, Py_ssize_t estimate);

/* Append a prepared record to ``batch``, all or nothing: the future, or NULL with
 * *refused set (its estimate does not fit ``limit``) or with an error set, and then
 * nothing changed. Whatever can fail for other reasons than memory (a closed builder,
 * a completed batch) is checked, and every object made, before the first change;
 * the changes follow (builder, futures list, callbacks list, batch.full, the hook),
 * each undone should a later one fail. */
static PyObject *record_commit(PyTypeObject *future_type, PyObject *batch, RecordsCore *builder, PyObject *futures,
                               record_t *r, PyObject *callback, Py_ssize_t limit, int *refused, commit_hook hook,
                               void *context)
{
    *refused = 0;
    if (check_open(builder) < 0)
        return NULL;
    if (builder->size + r->estimate > limit) {
        *refused = 1;
        return NULL;
    }
    PyObject *callbacks = NULL, *entry = NULL;
    PyObject *future = new_future(future_type, batch, PyList_GET_SIZE(futures), r->ts, r->k.len, r->v.len);
    if (future == NULL)
        return NULL;
    if (callback != Py_None) {
        callbacks = PyObject_GetAttr(batch, str_callbacks);
        if (callbacks == NULL)
            goto fail;
        if (!PyList_Check(callbacks)) {
            PyErr_SetString(PyExc_RuntimeError, "the batch is already complete: no callback can be added");
            goto fail;
        }
        entry = PyTuple_Pack(3, future, callback, Py_True);
        if (entry == NULL)
            goto fail;
    }
    RecordsCore before = *builder;
    Py_ssize_t before_len = PyByteArray_GET_SIZE(builder->buf);
    Py_ssize_t added = records_encode(builder, r->ts, &r->k, &r->v, &r->h); /* changes nothing if it fails */
    if (added <= 0) {
        if (added == 0) /* refused by the builder's max_size */
            *refused = 1;
        goto fail;
    }
    if (PyList_Append(futures, future) < 0)
        goto undo_encode;
    if (entry != NULL && PyList_Append(callbacks, entry) < 0)
        goto undo_futures;
    int set_full = builder->size >= limit;
    if (set_full && PyObject_SetAttr(batch, str_full, Py_True) < 0)
        goto undo_callbacks;
    if (hook != NULL && hook(context, r->estimate) < 0)
        goto undo_full;
    Py_XDECREF(entry);
    Py_XDECREF(callbacks);
    return future;
undo_full:
    if (set_full) {
        PyObject *exc_type, *exc_value, *exc_tb;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        if (PyObject_SetAttr(batch, str_full, Py_False) < 0) /* a slot of ProducerBatch: does not fail */
            PyErr_Clear();
        PyErr_Restore(exc_type, exc_value, exc_tb);
    }
undo_callbacks:
    if (entry != NULL)
        list_pop_last(callbacks);
undo_futures:
    list_pop_last(futures);
undo_encode: {
        PyObject *exc_type, *exc_value, *exc_tb;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        if (PyByteArray_Resize(builder->buf, before_len) < 0) /* shrinking: does not fail */
            PyErr_Clear();
        builder->count = before.count;
        builder->size = before.size;
        builder->max_record = before.max_record;
        builder->max_ts = before.max_ts;
        builder->base_ts = before.base_ts;
        builder->has_base = before.has_base;
        PyErr_Restore(exc_type, exc_value, exc_tb);
    }
fail:
    Py_XDECREF(entry);
    Py_XDECREF(callbacks);
    Py_DECREF(future);
    return NULL;
}

/* record_prepare + record_commit: the future; NULL with *refused set (no room, no
 * error) or with an error; nothing changed unless a future is returned. */
static PyObject *append_one(PyTypeObject *future_type, PyObject *batch, RecordsCore *builder, PyObject *futures,
                            PyObject *timestamp, PyObject *key, PyObject *value, PyObject *headers,
                            PyObject *callback, Py_ssize_t limit, Py_ssize_t *estimate, int *refused)
{
    record_t r;
    PyObject *future = NULL;
    *refused = 0;
    if (record_prepare(&r, timestamp, key, value, headers) == 0) {
        *estimate = r.estimate;
        future = record_commit(future_type, batch, builder, futures, &r, callback, limit, refused, NULL, NULL);
    }
    record_release(&r);
    return future;
}

/* append_record(future_type, batch, timestamp, key, value, headers, callback, limit)
 * -> future, or None when the record's estimate does not fit under ``limit``. */
static PyObject *py_append_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "append_record(future_type, batch, timestamp, key, value, headers, callback, limit) "
                        "takes 8 arguments");
        return NULL;
    }
    if (need_configured(0) < 0 || check_future_type(args[0]) < 0)
        return NULL;
    Py_ssize_t limit = PyLong_AsSsize_t(args[7]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    PyObject *batch = args[1];
    RecordsCore *builder = batch_builder(batch);
    if (builder == NULL)
        return NULL;
    PyObject *futures = PyObject_GetAttr(batch, str_futures);
    if (futures == NULL || !PyList_Check(futures)) {
        if (futures != NULL)
            PyErr_SetString(PyExc_TypeError, "batch.futures must be a list");
        Py_XDECREF(futures);
        Py_DECREF(builder);
        return NULL;
    }
    Py_ssize_t estimate;
    int refused;
    PyObject *future = append_one((PyTypeObject *)args[0], batch, builder, futures, args[2], args[3], args[4],
                                  args[5], args[6], limit, &estimate, &refused);
    Py_DECREF(futures);
    Py_DECREF(builder);
    if (future == NULL && refused && !PyErr_Occurred())
        Py_RETURN_NONE;
    return future;
}

/* Per-partition state of one append_many call. */
typedef struct {
    PyObject *batch; /* NULL: none open (or it became full) */
    RecordsCore *builder;
    PyObject *futures;
} open_t;

static void opens_release(open_t *opens, Py_ssize_t n)
{
    for (Py_ssize_t p = 0; p < n; p++) {
        Py_XDECREF(opens[p].batch);
        Py_XDECREF(opens[p].builder);
        Py_XDECREF(opens[p].futures);
    }
    PyMem_Free(opens);
}

/* append_many(future_type, batches, values, keys, timestamps, headers, partitions, callback,
 *             start, now, sticky_partition, sticky_budget, limit, out)
 *   -> (next index, sticky bytes used, stop reason)
 *
 * Appends records start.. in order to the open batch of their partition
 * (batches[p], None if the partition has none open) and appends their futures to
 * ``out``. ``keys``, ``timestamps``, ``headers``: sequences as long as ``values``, or
 * None (null keys, ``now``, no headers); a None timestamp is ``now``.
 * ``partitions``: an int for every record, or a sequence; -1 means the sticky
 * partition. Stops at the first record whose batch is missing or has no room
 * (reason 1: the caller opens a batch for it), after the sticky partition got
 * ``sticky_budget`` estimated bytes (reason 2), or at the end (reason 0). A batch
 * that reaches ``limit`` is marked full and gets no more records in this call
 * (reason 1 | 4 when any batch became full: the caller wakes the sender). */
static PyObject *py_append_many(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 14) {
        PyErr_SetString(PyExc_TypeError, "append_many() takes 14 arguments");
        return NULL;
    }
    if (need_configured(0) < 0 || check_future_type(args[0]) < 0)
        return NULL;
    PyTypeObject *future_type = (PyTypeObject *)args[0];
    PyObject *batches = args[1], *values = args[2], *keys = args[3], *timestamps = args[4];
    PyObject *headers = args[5], *partitions = args[6], *callback = args[7], *now = args[9], *out = args[13];
    if (!PyList_Check(batches) || !PyList_Check(out)) {
        PyErr_SetString(PyExc_TypeError, "append_many(): batches and out must be lists");
        return NULL;
    }
    if (!PyLong_Check(now)) {
        PyErr_SetString(PyExc_TypeError, "append_many(): now must be an int");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[8]);
    long sticky = PyLong_AsLong(args[10]);
    Py_ssize_t budget = PyLong_AsSsize_t(args[11]);
    Py_ssize_t limit = PyLong_AsSsize_t(args[12]);
    if (PyErr_Occurred())
        return NULL;
    if (!(PyList_CheckExact(values) || PyTuple_CheckExact(values))) {
        PyErr_SetString(PyExc_TypeError, "append_many(): values must be a list or tuple");
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(values);
    PyObject *optional[3] = {keys, timestamps, headers};
    for (int s = 0; s < 3; s++) {
        if (optional[s] != Py_None && !((PyList_CheckExact(optional[s]) || PyTuple_CheckExact(optional[s]))
                                        && PySequence_Fast_GET_SIZE(optional[s]) == n)) {
            PyErr_SetString(PyExc_TypeError,
                            "append_many(): keys, timestamps and headers must be None or lists as long as values");
            return NULL;
        }
    }
    long fixed_partition = -1;
    int per_record = !PyLong_Check(partitions);
    if (!per_record) {
        fixed_partition = PyLong_AsLong(partitions);
        if (fixed_partition == -1 && PyErr_Occurred())
            return NULL;
    } else if (!((PyList_CheckExact(partitions) || PyTuple_CheckExact(partitions))
                 && PySequence_Fast_GET_SIZE(partitions) == n)) {
        PyErr_SetString(PyExc_TypeError, "append_many(): partitions must be an int or a list as long as values");
        return NULL;
    }
    Py_ssize_t num_partitions = PyList_GET_SIZE(batches);
    open_t *opens = PyMem_Calloc((size_t)(num_partitions ? num_partitions : 1), sizeof(open_t));
    if (opens == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t p = 0; p < num_partitions; p++) {
        PyObject *batch = PyList_GET_ITEM(batches, p);
        if (batch != Py_None) {
            Py_INCREF(batch);
            opens[p].batch = batch;
        }
    }
    Py_ssize_t i = start, used = 0;
    int reason = 0, woke = 0;
    /* Items are re-read (and held) per record: a finalizer run by an allocation could change a list. */
    for (;; i++) {
        if (i >= PySequence_Fast_GET_SIZE(values))
            break;
        long p = fixed_partition;
        if (per_record) {
            if (i >= PySequence_Fast_GET_SIZE(partitions)) {
                PyErr_SetString(PyExc_RuntimeError, "append_many(): partitions changed size");
                goto error;
            }
            p = PyLong_AsLong(PySequence_Fast_GET_ITEM(partitions, i));
            if (p == -1 && PyErr_Occurred())
                goto error;
        }
        int is_sticky = p < 0;
        if (is_sticky)
            p = sticky;
        if (p < 0 || p >= num_partitions) {
            PyErr_Format(PyExc_ValueError, "append_many(): partition %ld of record %zd is out of range", p, i);
            goto error;
        }
        open_t *o = &opens[p];
        if (o->batch == NULL) {
            reason = 1;
            break;
        }
        if (o->builder == NULL) {
            o->builder = batch_builder(o->batch);
            if (o->builder == NULL)
                goto error;
            o->futures = PyObject_GetAttr(o->batch, str_futures);
            if (o->futures == NULL)
                goto error;
            if (!PyList_Check(o->futures)) {
                PyErr_SetString(PyExc_TypeError, "batch.futures must be a list");
                goto error;
            }
        }
        PyObject *item[4]; /* value, key, timestamp, headers */
        item[0] = PySequence_Fast_GET_ITEM(values, i);
        for (int s = 0; s < 3; s++) {
            if (optional[s] == Py_None || i >= PySequence_Fast_GET_SIZE(optional[s]))
                item[s + 1] = Py_None;
            else
                item[s + 1] = PySequence_Fast_GET_ITEM(optional[s], i);
        }
        if (item[2] == Py_None)
            item[2] = now;
        for (int s = 0; s < 4; s++)
            Py_INCREF(item[s]);
        Py_ssize_t estimate;
        int refused;
        PyObject *future = append_one(future_type, o->batch, o->builder, o->futures, item[2], item[1], item[0],
                                      item[3], callback, limit, &estimate, &refused);
        for (int s = 0; s < 4; s++)
            Py_DECREF(item[s]);
        if (future == NULL) {
            if (!refused || PyErr_Occurred())
                goto error;
            reason = 1;
            break;
        }
        int failed = PyList_Append(out, future);
        Py_DECREF(future);
        if (failed < 0)
            goto error;
        if (o->builder->size >= limit) {
            /* append_one marked it full: no more records for it in this call */
            woke = 1;
            Py_CLEAR(o->batch);
        }
        if (is_sticky) {
            used += estimate;
            if (used >= budget) {
                i++;
                reason = 2;
                break;
            }
        }
    }
    opens_release(opens, num_partitions);
    return Py_BuildValue("nni", i, used, reason | (woke ? 4 : 0));
error:
    opens_release(opens, num_partitions);
    return NULL;
}

/* -- SendPath: Producer.send's common case in one call -------------------------------- */

/* The whole per-record path of ``Producer.send`` for a record whose key and value
 * are already bytes (or None): partition (explicit, murmur2 of the key, or the
 * sticky one), timestamp, size limits, then under the accumulator lock the append
 * into the partition's open batch, its future and callback, the wake-up of the
 * sender when the batch fills, and the sticky partitioner's byte count.
 *
 * It handles only what needs no decision beyond that and returns None for
 * anything else (unknown topic, bad argument, no open batch with room, a sticky
 * partition still to draw, a closed accumulator), having changed nothing; the
 * caller then takes the Python path, which is the reference and raises the
 * errors. Its twins: Producer.send and RecordAccumulator.append, and
 * StickyPartitioner.partition / on_append for the sticky byte count. */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *accumulator;     /* for .closed */
    PyObject *queues;          /* accumulator._partitions: topic -> list of PartitionState (.queue: deque) */
    PyObject *acquire, *release; /* the accumulator lock's methods */
    PyObject *sticky_current;  /* StickyPartitioner._current: topic -> partition */
    PyObject *sticky_produced; /* StickyPartitioner._produced: topic -> bytes */
    PyObject *sticky_next;     /* StickyPartitioner._next(topic, n, available, previous) */
    PyObject *wakeup;
    PyObject *future_type;
    PyObject *metadata;        /* .partition_counts, .available (replaced, never mutated) */
    Py_ssize_t batch_size;
    Py_ssize_t sticky_batch_size;
    Py_ssize_t max_request_size;
    Py_ssize_t buffer_memory;
    long long max_timestamp;   /* producer.recordcheck.MAX_TIMESTAMP */
    Py_ssize_t max_partitions; /* producer.recordcheck.MAX_PARTITIONS */
    int keyed;                 /* not partitioner.ignore.keys */
    PyTypeObject *state_type;  /* the partition states' type, once seen */
    Py_ssize_t queue_offset;   /* where its `queue` slot lives in the object; 0: read it by name */
} SendPath;

static PyObject *str_closed, *str_partition_counts, *str_available, *str_queue;

static int sendpath_traverse(SendPath *self, visitproc visit, void *arg)
{
    Py_VISIT(self->accumulator);
    Py_VISIT(self->queues);
    Py_VISIT(self->acquire);
    Py_VISIT(self->release);
    Py_VISIT(self->sticky_current);
    Py_VISIT(self->sticky_produced);
    Py_VISIT(self->sticky_next);
    Py_VISIT(self->wakeup);
    Py_VISIT(self->future_type);
    Py_VISIT(self->metadata);
    Py_VISIT(self->state_type);
    return 0;
}

static int sendpath_clear(SendPath *self)
{
    Py_CLEAR(self->accumulator);
    Py_CLEAR(self->queues);
    Py_CLEAR(self->acquire);
    Py_CLEAR(self->release);
    Py_CLEAR(self->sticky_current);
    Py_CLEAR(self->sticky_produced);
    Py_CLEAR(self->sticky_next);
    Py_CLEAR(self->wakeup);
    Py_CLEAR(self->future_type);
    Py_CLEAR(self->metadata);
    Py_CLEAR(self->state_type);
    self->queue_offset = 0;
    return 0;
}

static void sendpath_dealloc(SendPath *self)
{
    PyObject_GC_UnTrack(self);
    sendpath_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int sendpath_init(SendPath *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"accumulator", "queues", "lock", "sticky_current", "sticky_produced", "sticky_next",
                             "sticky_batch_size", "wakeup", "future_type", "batch_size", "metadata", "keyed",
                             "max_request_size", "buffer_memory", "max_timestamp", "max_partitions", NULL};
    PyObject *accumulator, *queues, *lock, *current, *produced, *next, *wakeup, *future_type, *metadata;
    Py_ssize_t sticky_batch_size, batch_size, max_request_size, buffer_memory, max_partitions;
    long long max_timestamp;
    int keyed;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "$OO!OO!O!OnOOnOpnnLn:SendPath", kwlist, &accumulator, &PyDict_Type,
                                     &queues, &lock, &PyDict_Type, &current, &PyDict_Type, &produced, &next,
                                     &sticky_batch_size, &wakeup, &future_type, &batch_size, &metadata, &keyed,
                                     &max_request_size, &buffer_memory, &max_timestamp, &max_partitions))
        return -1;
    if (need_configured(0) < 0 || check_future_type(future_type) < 0)
        return -1;
    PyObject *acquire = PyObject_GetAttrString(lock, "acquire");
    PyObject *release = acquire ? PyObject_GetAttrString(lock, "release") : NULL;
    if (release == NULL) {
        Py_XDECREF(acquire);
        return -1;
    }
    sendpath_clear(self);
    self->acquire = acquire;
    self->release = release;
    Py_INCREF(accumulator);
    self->accumulator = accumulator;
    Py_INCREF(queues);
    self->queues = queues;
    Py_INCREF(current);
    self->sticky_current = current;
    Py_INCREF(produced);
    self->sticky_produced = produced;
    Py_INCREF(next);
    self->sticky_next = next;
    Py_INCREF(wakeup);
    self->wakeup = wakeup;
    Py_INCREF(future_type);
    self->future_type = future_type;
    Py_INCREF(metadata);
    self->metadata = metadata;
    self->sticky_batch_size = sticky_batch_size;
    self->batch_size = batch_size;
    self->keyed = keyed;
    self->max_request_size = max_request_size;
    self->buffer_memory = buffer_memory;
    self->max_timestamp = max_timestamp;
    self->max_partitions = max_partitions;
    return 0;
}

static inline Py_ssize_t plain_len(PyObject *obj) /* bytes or None; -2 for anything else */
{
    if (obj == Py_None)
        return -1;
    if (PyBytes_CheckExact(obj))
        return PyBytes_GET_SIZE(obj);
    return -2;
}

/* The `queue` of a PartitionState (new reference), or NULL with an error set. Its type's
 * `queue` is a slot (a member descriptor): the first time, find where the slot lives in the
 * object, then read it there, as the descriptor would; anything else is read by name. */
static PyObject *state_queue(SendPath *self, PyObject *state)
{
    PyTypeObject *type = Py_TYPE(state);
    if (type != self->state_type) {
        Py_INCREF(type);
        Py_XSETREF(self->state_type, type);
        self->queue_offset = 0;
        PyObject *descr = PyObject_GetAttr((PyObject *)type, str_queue);
        if (descr == NULL)
            return NULL;
        if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            if (member->type == T_OBJECT_EX && !(member->flags & READONLY) && member->offset > 0)
                self->queue_offset = member->offset;
        }
        Py_DECREF(descr);
    }
    if (self->queue_offset > 0) {
        PyObject *queue = *(PyObject **)((char *)state + self->queue_offset);
        if (queue == NULL) {
            PyErr_SetString(PyExc_AttributeError, "queue");
            return NULL;
        }
        Py_INCREF(queue);
        return queue;
    }
    return PyObject_GetAttr(state, str_queue);
}

/* The open batch of topic-partition (new reference), or NULL (none / full; no error set). */
static PyObject *open_batch(SendPath *self, PyObject *topic, long partition)
{
    PyObject *queues = PyDict_GetItemWithError(self->queues, topic);
    if (queues == NULL || !PyList_Check(queues) || partition >= PyList_GET_SIZE(queues))
        return NULL;
    PyObject *queue = state_queue(self, PyList_GET_ITEM(queues, partition));
    if (queue == NULL)
        return NULL;
    Py_ssize_t length = PySequence_Length(queue);
    if (length <= 0) {
        if (length < 0)
            PyErr_Clear();
        Py_DECREF(queue);
        return NULL;
    }
    PyObject *batch = PySequence_GetItem(queue, length - 1);
    Py_DECREF(queue);
    if (batch == NULL)
        return NULL;
    PyObject *full = PyObject_GetAttr(batch, str_full);
    int is_full = full ? PyObject_IsTrue(full) : -1;
    Py_XDECREF(full);
    if (is_full != 0) {
        Py_DECREF(batch);
        return NULL; /* full, or an error (set) */
    }
    return batch;
}

/* SendPath's sticky bookkeeping, run by record_commit once the record is in:
 * StickyPartitioner.on_append(topic, partition, estimate, num_partitions, available).
 * The byte count goes into an existing key of _produced (does not fail); a record
 * that completes the batch.size budget draws the next partition (_next, Python),
 * and should that raise, both of the partitioner's entries for the topic are put
 * back, so the record can be taken out with nothing changed. */
typedef struct {
    SendPath *self;
    PyObject *topic;
    Py_ssize_t num_partitions;
    long partition;
    Py_ssize_t produced_before;
} sticky_step_t;

static int sticky_step(void *context, Py_ssize_t estimate)
{
    sticky_step_t *c = (sticky_step_t *)context;
    SendPath *self = c->self;
    Py_ssize_t total = c->produced_before + estimate;
    if (total < self->sticky_batch_size) {
        PyObject *value = PyLong_FromSsize_t(total);
        if (value == NULL)
            return -1;
        int failed = PyDict_SetItem(self->sticky_produced, c->topic, value); /* an existing key */
        Py_DECREF(value);
        return failed;
    }
    PyObject *old_current = PyDict_GetItemWithError(self->sticky_current, c->topic);
    PyObject *old_produced = old_current ? PyDict_GetItemWithError(self->sticky_produced, c->topic) : NULL;
    if (old_produced == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "the sticky partitioner lost its entry for the topic");
        return -1;
    }
    Py_INCREF(old_current);
    Py_INCREF(old_produced);
    PyObject *all = PyObject_GetAttr(self->metadata, str_available);
    PyObject *available = all && PyDict_Check(all) ? PyDict_GetItemWithError(all, c->topic) : NULL;
    PyObject *r = NULL;
    if (all != NULL && !PyErr_Occurred())
        r = PyObject_CallFunction(self->sticky_next, "OnOl", c->topic, c->num_partitions,
                                  available ? available : Py_None, c->partition);
    Py_XDECREF(all);
    int failed = r == NULL;
    Py_XDECREF(r);
    if (failed) { /* put the partitioner's entries back (existing keys: does not fail) */
        PyObject *exc_type, *exc_value, *exc_tb;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        if (PyDict_SetItem(self->sticky_current, c->topic, old_current) < 0
            || PyDict_SetItem(self->sticky_produced, c->topic, old_produced) < 0)
            PyErr_Clear();
        PyErr_Restore(exc_type, exc_value, exc_tb);
    }
    Py_DECREF(old_current);
    Py_DECREF(old_produced);
    return failed ? -1 : 0;
}

/* Under the lock: append into the open batch, sticky bookkeeping; all or nothing.
 * A future, None (nothing changed: the Python path takes the record), or NULL with
 * an error (nothing changed): record_commit runs the sticky step after the record
 * is in and takes the record out again should it fail. */
static PyObject *sendpath_locked(SendPath *self, PyObject *topic, long partition, int sticky,
                                 Py_ssize_t num_partitions, PyObject *timestamp, PyObject *key, PyObject *value,
                                 PyObject *headers, PyObject *callback, int *became_full_out)
{
    PyObject *closed = PyObject_GetAttr(self->accumulator, str_closed);
    int is_closed = closed ? PyObject_IsTrue(closed) : -1;
    Py_XDECREF(closed);
    if (is_closed < 0)
        return NULL;
    if (is_closed)
        Py_RETURN_NONE;
    sticky_step_t step = {self, topic, num_partitions, -1, 0};
    if (sticky) {
        PyObject *current = PyDict_GetItemWithError(self->sticky_current, topic);
        if (current == NULL) {
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_NONE; /* no sticky partition drawn yet */
        }
        partition = PyLong_AsLong(current);
        if (partition == -1 && PyErr_Occurred())
            return NULL;
        if (partition < 0 || partition >= num_partitions)
            Py_RETURN_NONE;
        PyObject *produced = PyDict_GetItemWithError(self->sticky_produced, topic);
        if (produced == NULL) {
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_NONE; /* no count to add to: StickyPartitioner._next makes both entries */
        }
        step.produced_before = PyLong_AsSsize_t(produced);
        if (step.produced_before == -1 && PyErr_Occurred())
            return NULL;
        step.partition = partition;
    }
    PyObject *batch = open_batch(self, topic, partition);
    if (batch == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *future = NULL;
    RecordsCore *builder = batch_builder(batch);
    PyObject *futures = builder ? PyObject_GetAttr(batch, str_futures) : NULL;
    record_t r;
    int prepared = 0;
    if (futures == NULL)
        goto done;
    if (!PyList_Check(futures)) {
        PyErr_SetString(PyExc_TypeError, "batch.futures must be a list");
        goto done;
    }
    prepared = 1;
    if (record_prepare(&r, timestamp, key, value, headers) < 0)
        goto done;
    int refused;
    future = record_commit((PyTypeObject *)self->future_type, batch, builder, futures, &r, callback, self->batch_size,
                           &refused, sticky ? sticky_step : NULL, &step);
    if (future == NULL) {
        if (refused && !PyErr_Occurred()) {
            future = Py_None; /* no room: the Python path marks the batch full and opens one */
            Py_INCREF(future);
        }
        goto done;
    }
    *became_full_out = builder->size >= self->batch_size; /* the caller wakes the sender after the release */
done:
    if (prepared)
        record_release(&r);
    Py_XDECREF(futures);
    Py_XDECREF(builder);
    Py_DECREF(batch);
    return future;
}

/* A call after the record was committed failed (lock release, wake-up; neither does
 * in practice). The record is queued and will be sent, so the caller must get its
 * future, not an exception it would answer with a retry (a duplicate): an Exception
 * is reported as unraisable; a KeyboardInterrupt or SystemExit propagates. With no
 * record committed (future NULL or None) the error propagates. */
static PyObject *after_commit(PyObject *what, PyObject *future)
{
    if (future == NULL || future == Py_None || !PyErr_ExceptionMatches(PyExc_Exception)) {
        Py_XDECREF(future);
        return NULL;
    }
    PyErr_WriteUnraisable(what);
    return future;
}

/* send(topic, value, key, partition, timestamp, headers, callback) -> future | None */
static PyObject *sendpath_call(SendPath *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 7 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "SendPath(topic, value, key, partition, timestamp, headers, callback)");
        return NULL;
    }
    PyObject *topic = args[0], *value = args[1], *key = args[2], *partition_obj = args[3];
    PyObject *timestamp = args[4], *headers = args[5], *callback = args[6];
    if (!PyUnicode_CheckExact(topic))
        Py_RETURN_NONE;
    Py_ssize_t key_len = plain_len(key), value_len = plain_len(value);
    if (key_len == -2 || value_len == -2)
        Py_RETURN_NONE; /* not serialized yet */
    PyObject *counts = PyObject_GetAttr(self->metadata, str_partition_counts);
    if (counts == NULL)
        return NULL;
    PyObject *count_obj = PyDict_Check(counts) ? PyDict_GetItemWithError(counts, topic) : NULL;
    Py_ssize_t num_partitions = count_obj ? PyLong_AsSsize_t(count_obj) : -1;
    Py_DECREF(counts);
    if (PyErr_Occurred())
        return NULL;
    if (num_partitions <= 0 || num_partitions > self->max_partitions)
        Py_RETURN_NONE; /* no metadata yet: the Python path waits for it */
    long partition = -1;
    int sticky = 0;
    if (partition_obj == Py_None) {
        if (key_len >= 0 && self->keyed) {
            uint32_t h = murmur2_raw((const unsigned char *)PyBytes_AS_STRING(key), key_len);
            partition = (long)((h & 0x7fffffffU) % (uint32_t)num_partitions);
        } else {
            sticky = 1;
        }
    } else {
        if (!PyLong_CheckExact(partition_obj))
            Py_RETURN_NONE;
        int overflow = 0;
        partition = PyLong_AsLongAndOverflow(partition_obj, &overflow);
        if (overflow || partition < 0 || partition >= num_partitions) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
    }
    PyObject *ts_obj;
    if (timestamp == Py_None) {
        struct timespec now;
        if (clock_gettime(CLOCK_REALTIME, &now) != 0)
            Py_RETURN_NONE;
        ts_obj = PyLong_FromLongLong((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        if (ts_obj == NULL)
            return NULL;
    } else {
        if (!PyLong_CheckExact(timestamp))
            Py_RETURN_NONE;
        int overflow = 0;
        long long ts = PyLong_AsLongLongAndOverflow(timestamp, &overflow);
        if (overflow || ts < 0 || ts > self->max_timestamp) {
            PyErr_Clear();
            Py_RETURN_NONE; /* negative or too large: the Python path raises */
        }
        Py_INCREF(timestamp);
        ts_obj = timestamp;
    }
    Py_ssize_t size = (key_len > 0 ? key_len : 0) + (value_len > 0 ? value_len : 0);
    if (size + batch_header_size > self->max_request_size || size > self->buffer_memory) {
        Py_DECREF(ts_obj);
        Py_RETURN_NONE; /* too large: the Python path raises */
    }
    PyObject *r = PyObject_CallNoArgs(self->acquire);
    if (r == NULL) {
        Py_DECREF(ts_obj);
        return NULL;
    }
    Py_DECREF(r);
    int became_full = 0;
    PyObject *future = sendpath_locked(self, topic, partition, sticky, num_partitions, ts_obj, key, value, headers,
                                       callback, &became_full);
    Py_DECREF(ts_obj);
    /* release even with an exception pending */
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    r = PyObject_CallNoArgs(self->release);
    if (r == NULL) {
        Py_XDECREF(exc_type);
        Py_XDECREF(exc_value);
        Py_XDECREF(exc_tb);
        return after_commit(self->release, future);
    }
    Py_DECREF(r);
    PyErr_Restore(exc_type, exc_value, exc_tb);
    if (became_full && future != NULL && future != Py_None) {
        r = PyObject_CallNoArgs(self->wakeup);
        if (r == NULL)
            return after_commit(self->wakeup, future);
        Py_DECREF(r);
    }
    return future;
}

static PyObject *sendpath_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return sendpath_call((SendPath *)self, args, nargsf, kwnames);
}

static PyObject *sendpath_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    SendPath *self = (SendPath *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->vectorcall = sendpath_vectorcall;
    return (PyObject *)self;
}

static PyTypeObject SendPath_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kprod._speedups.SendPath",
    .tp_basicsize = sizeof(SendPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Producer.send's common case in one call (see RecordAccumulator.send_path).",
    .tp_vectorcall_offset = offsetof(SendPath, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = sendpath_new,
    .tp_init = (initproc)sendpath_init,
    .tp_dealloc = (destructor)sendpath_dealloc,
    .tp_traverse = (traverseproc)sendpath_traverse,
    .tp_clear = (inquiry)sendpath_clear,
};

/* -- SendCore: Producer.send without a Python frame -------------------------------------- */

/* The base class of kprod.Producer; its send() is Producer.send. With the
 * arguments of the common case (a topic, no headers) it calls the SendPath in
 * self._fast_send directly and returns its future; in every other case (no
 * SendPath, headers, SendPath answering None) it calls
 * self._send_fallback(self, topic, value, key, partition, timestamp, headers, callback)
 * (Producer._send_python, set by Producer.__init__: C looks up no attribute by name),
 * which is the reference and raises the errors; a call that does not fit
 * send()'s signature raises the TypeError Python would. Saves the Python frame of send(), ~0.1 µs
 * per record. Twin: producer.fastpath._SendCorePy. */

typedef struct {
    PyObject_HEAD
    PyObject *fast_send; /* a SendPath (or any callable taking its 7 arguments), or NULL/None */
    PyObject *fallback;  /* _send_fallback: called as fallback(self, the 7 arguments) */
} SendCore;

#define SEND_ARGS 7
static PyObject *send_arg_names[SEND_ARGS]; /* topic, value, key, partition, timestamp, headers, callback */

static int sendcore_traverse(SendCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fast_send);
    Py_VISIT(self->fallback);
    return 0;
}

static int sendcore_clear(SendCore *self)
{
    Py_CLEAR(self->fast_send);
    Py_CLEAR(self->fallback);
    return 0;
}

static void sendcore_dealloc(SendCore *self)
{
    PyObject_GC_UnTrack(self);
    sendcore_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Place send()'s arguments in a[] (missing ones None): 0, or -1 with the TypeError
 * Python raises for a call that does not fit send()'s signature. */
static int send_arguments(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **a)
{
    if (nargs > SEND_ARGS) {
        PyErr_Format(PyExc_TypeError, "send() takes from 1 to %d positional arguments but %zd were given", SEND_ARGS,
                     nargs);
        return -1;
    }
    for (int j = 0; j < SEND_ARGS; j++)
        a[j] = j < nargs ? args[j] : NULL;
    Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nk; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int j = 0;
        while (j < SEND_ARGS && name != send_arg_names[j])
            j++;
        if (j == SEND_ARGS) { /* not interned: compare the text */
            for (j = 0; j < SEND_ARGS; j++) {
                int cmp = PyUnicode_Compare(name, send_arg_names[j]);
                if (cmp == -1 && PyErr_Occurred())
                    return -1;
                if (cmp == 0)
                    break;
            }
        }
        if (j == SEND_ARGS) {
            PyErr_Format(PyExc_TypeError, "send() got an unexpected keyword argument '%U'", name);
            return -1;
        }
        if (a[j] != NULL) {
            PyErr_Format(PyExc_TypeError, "send() got multiple values for argument '%U'", send_arg_names[j]);
            return -1;
        }
        a[j] = args[nargs + k];
    }
    if (a[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "send() missing 1 required positional argument: 'topic'");
        return -1;
    }
    for (int j = 1; j < SEND_ARGS; j++) {
        if (a[j] == NULL)
            a[j] = Py_None;
    }
    return 0;
}

static PyObject *sendcore_send(SendCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[SEND_ARGS];
    if (send_arguments(args, nargs, kwnames, a) < 0)
        return NULL;
    PyObject *fast = self->fast_send;
    if (fast != NULL && fast != Py_None && a[5] == Py_None) {
        Py_INCREF(fast); /* the call may run Python that replaces self->fast_send */
        PyObject *future = Py_IS_TYPE(fast, &SendPath_Type) ? sendpath_call((SendPath *)fast, a, SEND_ARGS, NULL)
                                                            : PyObject_Vectorcall(fast, a, SEND_ARGS, NULL);
        Py_DECREF(fast);
        if (future != Py_None)
            return future; /* the future, or NULL with the error set */
        Py_DECREF(future);
    }
    PyObject *fallback = self->fallback;
    if (fallback == NULL || fallback == Py_None) {
        PyErr_SetString(PyExc_TypeError, "SendCore: set _send_fallback (a function taking self and send()'s 7 "
                                         "arguments) before calling send()");
        return NULL;
    }
    PyObject *b[SEND_ARGS + 1];
    b[0] = (PyObject *)self;
    for (int j = 0; j < SEND_ARGS; j++)
        b[j + 1] = a[j];
    Py_INCREF(fallback); /* the call may replace self->fallback */
    PyObject *result = PyObject_Vectorcall(fallback, b, SEND_ARGS + 1, NULL);
    Py_DECREF(fallback);
    return result;
}

static PyMethodDef sendcore_methods[] = {
    {"send", (PyCFunction)(void (*)(void))sendcore_send, METH_FASTCALL | METH_KEYWORDS,
     "send($self, /, topic, value=None, key=None, partition=None, timestamp=None, headers=None, callback=None)\n"
     "--\n\n"
     "Queue one record; returns a future of its RecordMetadata.\n\n"
     "send(ProducerRecord(...), callback=cb) or send(topic, value, key=...).\n"
     "callback(metadata, exception) runs on the I/O thread once the record\n"
     "is acknowledged or failed; keep it quick. Raises at once for errors\n"
     "before sending: serialization, unknown topic or full buffer after\n"
     "max.block.ms, a record too large, a closed producer."},
    {NULL},
};

static PyMemberDef sendcore_members[] = {
    {"_fast_send", T_OBJECT, offsetof(SendCore, fast_send), 0,
     "The producer's SendPath (None: every send() takes the Python path)."},
    {"_send_fallback", T_OBJECT, offsetof(SendCore, fallback), 0,
     "fallback(self, topic, value, key, partition, timestamp, headers, callback): send() for every "
     "record the SendPath does not take (Producer._send_python)."},
    {NULL},
};

static PyTypeObject SendCore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kprod._speedups.SendCore",
    .tp_basicsize = sizeof(SendCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Base class of kprod.Producer: send() without a Python frame (twin: producer.fastpath._SendCorePy).",
    .tp_methods = sendcore_methods,
    .tp_members = sendcore_members,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)sendcore_dealloc,
    .tp_traverse = (traverseproc)sendcore_traverse,
    .tp_clear = (inquiry)sendcore_clear,
};

/* -- module ---------------------------------------------------------------------------- */

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))py_configure, METH_VARARGS | METH_KEYWORDS,
     "configure(*, batch_header_size, record_overhead, header_overhead): the constants Python defines "
     "(any subset; called at import by protocol.records and producer.fastpath)"},
    {"murmur2", (PyCFunction)py_murmur2, METH_O, "murmur2(data) -> Kafka's murmur2 hash as Java returns it (signed)"},
    {"partitions_for_keys", (PyCFunction)(void (*)(void))py_partitions_for_keys, METH_FASTCALL,
     "partitions_for_keys(keys, num_partitions) -> list: toPositive(murmur2(key)) % n, -1 for a null key"},
    {"hold_batch", (PyCFunction)(void (*)(void))py_hold_batch, METH_FASTCALL,
     "hold_batch(futures, batch): each record future holds its completed batch strongly"},
    {"scan_bytes", (PyCFunction)py_scan_bytes, METH_O,
     "scan_bytes(seq) -> (index of the first item neither bytes nor None or -1, largest length before it)"},
    {"append_record", (PyCFunction)(void (*)(void))py_append_record, METH_FASTCALL,
     "append_record(future_type, batch, timestamp, key, value, headers, callback, limit) -> future | None"},
    {"append_many", (PyCFunction)(void (*)(void))py_append_many, METH_FASTCALL,
     "append_many(future_type, batches, values, keys, timestamps, headers, partitions, callback, start, now, "
     "sticky_partition, sticky_budget, limit, out) -> (next, sticky_used, reason)"},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kprod._speedups",
    .m_doc = "Compiled twins of kprod's per-record hot path (optional; see kprod._native).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    if (PyType_Ready(&RecordsCore_Type) < 0 || PyType_Ready(&FutureCore_Type) < 0 || PyType_Ready(&SendPath_Type) < 0
        || PyType_Ready(&SendCore_Type) < 0)
        return NULL;
    static const char *arg_names[SEND_ARGS] = {"topic", "value", "key", "partition", "timestamp", "headers", "callback"};
    for (int j = 0; j < SEND_ARGS; j++) {
        send_arg_names[j] = PyUnicode_InternFromString(arg_names[j]);
        if (send_arg_names[j] == NULL)
            return NULL;
    }
    str_closed = PyUnicode_InternFromString("closed");
    str_queue = PyUnicode_InternFromString("queue");
    str_partition_counts = PyUnicode_InternFromString("partition_counts");
    str_available = PyUnicode_InternFromString("available");
    if (!str_closed || !str_queue || !str_partition_counts || !str_available)
        return NULL;
    str_builder = PyUnicode_InternFromString("builder");
    str_futures = PyUnicode_InternFromString("futures");
    str_full = PyUnicode_InternFromString("full");
    str_callbacks = PyUnicode_InternFromString("callbacks");
    if (!str_builder || !str_futures || !str_full || !str_callbacks)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (kprod_io_add_functions(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&RecordsCore_Type);
    if (PyModule_AddObject(m, "RecordsCore", (PyObject *)&RecordsCore_Type) < 0) {
        Py_DECREF(&RecordsCore_Type);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&FutureCore_Type);
    if (PyModule_AddObject(m, "FutureCore", (PyObject *)&FutureCore_Type) < 0) {
        Py_DECREF(&FutureCore_Type);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&SendPath_Type);
    if (PyModule_AddObject(m, "SendPath", (PyObject *)&SendPath_Type) < 0) {
        Py_DECREF(&SendPath_Type);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&SendCore_Type);
    if (PyModule_AddObject(m, "SendCore", (PyObject *)&SendCore_Type) < 0) {
        Py_DECREF(&SendCore_Type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
