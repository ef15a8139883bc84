/* The compiled crossing kernel: FarmHash Fingerprint64 (farmhashna::Hash64), TensorFlow's
 * FingerprintCat64 fold and the modulo, over Python objects, NumPy and Arrow buffers.
 *
 * Built as the optional extension beam_cross.core._kernel; beam_cross.core._fingerprint falls back
 * to NumPy and pyfarmhash when it is missing or when BEAM_CROSS_KERNEL=numpy. Every function here
 * computes exactly what that fallback computes; where a value is not one of the fast cases (an exact
 * str, bytes or int), the function says so and the caller applies the Python value rule.
 *
 * Written from ../shared/reference/crossing-semantics.md sections 4 and 5 (farmhash.cc, fingerprint.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <float.h>
#include <string.h>

typedef uint64_t u64;
typedef uint32_t u32;

static const u64 k0 = 0xc3a5c85c97cb3127ULL;
static const u64 k1 = 0xb492b66fbe98f273ULL;
static const u64 k2 = 0x9ae16a3b2f90404fULL;
static const u64 kMul = 0xc6a4a7935bd1e995ULL;

/* ---------------------------------------------------------------- FarmHash */

static inline u64 fetch64(const unsigned char *p) {
    u64 v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline u32 fetch32(const unsigned char *p) {
    u32 v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline u64 rot(u64 v, int s) { return (v >> s) | (v << (64 - s)); }
static inline u64 shift_mix(u64 v) { return v ^ (v >> 47); }

static inline u64 hash_len16(u64 u, u64 v, u64 mul) {
    u64 a = (u ^ v) * mul;
    a ^= a >> 47;
    u64 b = (v ^ a) * mul;
    b ^= b >> 47;
    return b * mul;
}

static inline u64 len_0_to_16(const unsigned char *s, size_t n) {
    if (n >= 8) {
        u64 mul = k2 + n * 2;
        u64 a = fetch64(s) + k2;
        u64 b = fetch64(s + n - 8);
        u64 c = rot(b, 37) * mul + a;
        u64 d = (rot(a, 25) + b) * mul;
        return hash_len16(c, d, mul);
    }
    if (n >= 4) {
        u64 mul = k2 + n * 2;
        u64 a = fetch32(s);
        return hash_len16(n + (a << 3), fetch32(s + n - 4), mul);
    }
    if (n > 0) {
        unsigned char a = s[0], b = s[n >> 1], c = s[n - 1];
        u32 y = (u32)a + ((u32)b << 8);
        u32 z = (u32)n + ((u32)c << 2);
        return shift_mix((u64)y * k2 ^ (u64)z * k0) * k2;
    }
    return k2;
}

static inline u64 len_17_to_32(const unsigned char *s, size_t n) {
    u64 mul = k2 + n * 2;
    u64 a = fetch64(s) * k1;
    u64 b = fetch64(s + 8);
    u64 c = fetch64(s + n - 8) * mul;
    u64 d = fetch64(s + n - 16) * k2;
    return hash_len16(rot(a + b, 43) + rot(c, 30) + d, a + rot(b + k2, 18) + c, mul);
}

static inline u64 len_33_to_64(const unsigned char *s, size_t n) {
    u64 mul = k2 + n * 2;
    u64 a = fetch64(s) * k2;
    u64 b = fetch64(s + 8);
    u64 c = fetch64(s + n - 8) * mul;
    u64 d = fetch64(s + n - 16) * k2;
    u64 y = rot(a + b, 43) + rot(c, 30) + d;
    u64 z = hash_len16(y, a + rot(b + k2, 18) + c, mul);
    u64 e = fetch64(s + 16) * mul;
    u64 f = fetch64(s + 24);
    u64 g = (y + fetch64(s + n - 32)) * mul;
    u64 h = (z + fetch64(s + n - 24)) * mul;
    return hash_len16(rot(e + f, 43) + rot(g, 30) + h, e + rot(f + a, 18) + g, mul);
}

typedef struct { u64 first, second; } pair64;

static inline pair64 weak32(u64 w, u64 x, u64 y, u64 z, u64 a, u64 b) {
    a += w;
    b = rot(b + a + z, 21);
    u64 c = a;
    a += x;
    a += y;
    b += rot(a, 44);
    pair64 r = {a + z, b + c};
    return r;
}

static inline pair64 weak32_at(const unsigned char *s, u64 a, u64 b) {
    return weak32(fetch64(s), fetch64(s + 8), fetch64(s + 16), fetch64(s + 24), a, b);
}

static u64 len_over_64(const unsigned char *s, size_t n) {
    const u64 seed = 81;
    u64 x = seed;
    u64 y = seed * k1 + 113;
    u64 z = shift_mix(y * k2 + 113) * k2;
    pair64 v = {0, 0}, w = {0, 0};
    x = x * k2 + fetch64(s);
    const unsigned char *end = s + ((n - 1) / 64) * 64;
    const unsigned char *last64 = end + ((n - 1) & 63) - 63;
    do {
        x = rot(x + y + v.first + fetch64(s + 8), 37) * k1;
        y = rot(y + v.second + fetch64(s + 48), 42) * k1;
        x ^= w.second;
        y += v.first + fetch64(s + 40);
        z = rot(z + w.first, 33) * k1;
        v = weak32_at(s, v.second * k1, x + w.first);
        w = weak32_at(s + 32, z + w.second, y + fetch64(s + 16));
        u64 t = z; z = x; x = t;
        s += 64;
    } while (s != end);
    u64 mul = k1 + ((z & 0xff) << 1);
    s = last64;
    w.first += ((n - 1) & 63);
    v.first += w.first;
    w.first += v.first;
    x = rot(x + y + v.first + fetch64(s + 8), 37) * mul;
    y = rot(y + v.second + fetch64(s + 48), 42) * mul;
    x ^= w.second * 9;
    y += v.first * 9 + fetch64(s + 40);
    z = rot(z + w.first, 33) * mul;
    v = weak32_at(s, v.second * mul, x + w.first);
    w = weak32_at(s + 32, z + w.second, y + fetch64(s + 16));
    u64 t = z; z = x; x = t;
    return hash_len16(hash_len16(v.first, w.first, mul) + shift_mix(y) * k0 + z,
                      hash_len16(v.second, w.second, mul) + x, mul);
}

static inline u64 fingerprint64(const unsigned char *s, size_t n) {
    if (n <= 16) return len_0_to_16(s, n);
    if (n <= 32) return len_17_to_32(s, n);
    if (n <= 64) return len_33_to_64(s, n);
    return len_over_64(s, n);
}

static inline u64 cat64(u64 fp1, u64 fp2) {
    u64 result = fp1 ^ kMul;
    result ^= shift_mix(fp2 * kMul) * kMul;
    result *= kMul;
    result = shift_mix(result) * kMul;
    result = shift_mix(result);
    return result;
}

/* h % d for one d over many h: a division is 20-40 cycles, a multiply by a precomputed reciprocal
 * a few. With m = floor((2**64 - 1) / d), q = floor(h * m / 2**64) is the quotient or at most 2
 * below it (h < 2**64), so h - q * d needs at most two corrections. */
typedef struct { u64 d, m; } modulo_t;

static inline modulo_t modulo_of(u64 d) {
    modulo_t r = {d, d ? UINT64_MAX / d : 0};
    return r;
}

static inline u64 modulo(u64 h, const modulo_t *mod) {
#if defined(__SIZEOF_INT128__)
    u64 q = (u64)(((unsigned __int128)h * mod->m) >> 64);
    u64 r = h - q * mod->d;
    r -= mod->d & (0 - (u64)(r >= mod->d));  /* branch-free: which rows need a correction is random */
    r -= mod->d & (0 - (u64)(r >= mod->d));
    return r;
#else
    return h % mod->d;
#endif
}

/* ---------------------------------------------------------------- buffers */

/* A writable C-contiguous buffer of uint64 with room for `count` values. */
static int get_out(PyObject *obj, Py_buffer *view, Py_ssize_t count) {
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->len < count * 8) {
        PyErr_Format(PyExc_ValueError, "the output buffer holds %zd bytes, %zd are needed", view->len, count * 8);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int get_in(PyObject *obj, Py_buffer *view) {
    return PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS);
}

/* fingerprint_buffers(offsets, width, data, out): Fingerprint64 of string i = data[offsets[i]:offsets[i+1]],
 * offsets of `width` bytes (4 or 8), into out[i]. Raises ValueError on offsets that decrease or leave data. */
static PyObject *k_fingerprint_buffers(PyObject *self, PyObject *args) {
    PyObject *o_off, *o_data, *o_out;
    int width;
    if (!PyArg_ParseTuple(args, "OiOO", &o_off, &width, &o_data, &o_out)) return NULL;
    if (width != 4 && width != 8) return PyErr_Format(PyExc_ValueError, "offset width must be 4 or 8, not %d", width);
    Py_buffer off, data, out;
    if (get_in(o_off, &off) < 0) return NULL;
    if (get_in(o_data, &data) < 0) { PyBuffer_Release(&off); return NULL; }
    Py_ssize_t count = off.len / width - 1;
    if (count < 0) count = 0;
    if (get_out(o_out, &out, count) < 0) { PyBuffer_Release(&off); PyBuffer_Release(&data); return NULL; }
    const unsigned char *base = (const unsigned char *)data.buf;
    u64 *dst = (u64 *)out.buf;
    long long size = (long long)data.len;
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS
    if (width == 4) {
        int32_t o[2];
        const unsigned char *p = (const unsigned char *)off.buf;
        for (Py_ssize_t i = 0; i < count; i++) {
            memcpy(o, p + 4 * i, 8);
            if (o[0] < 0 || o[1] < o[0] || (long long)o[1] > size) { bad = i; break; }
            dst[i] = fingerprint64(base + o[0], (size_t)(o[1] - o[0]));
        }
    } else {
        int64_t o[2];
        const unsigned char *p = (const unsigned char *)off.buf;
        for (Py_ssize_t i = 0; i < count; i++) {
            memcpy(o, p + 8 * i, 16);
            if (o[0] < 0 || o[1] < o[0] || o[1] > size) { bad = i; break; }
            dst[i] = fingerprint64(base + o[0], (size_t)(o[1] - o[0]));
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&off);
    PyBuffer_Release(&data);
    PyBuffer_Release(&out);
    if (bad >= 0) return PyErr_Format(PyExc_ValueError, "string %zd: its offsets decrease or point outside the data", bad);
    Py_RETURN_NONE;
}

/* UTF-8 of one UCS-4 code point into p; returns the byte count, or 0 for a surrogate or a value
 * above U+10FFFF (not encodable). */
static inline int utf8_of(u32 c, unsigned char *p) {
    if (c < 0x80) { p[0] = (unsigned char)c; return 1; }
    if (c < 0x800) { p[0] = 0xc0 | (c >> 6); p[1] = 0x80 | (c & 0x3f); return 2; }
    if (c < 0x10000) {
        if (c >= 0xd800 && c <= 0xdfff) return 0;
        p[0] = 0xe0 | (c >> 12); p[1] = 0x80 | ((c >> 6) & 0x3f); p[2] = 0x80 | (c & 0x3f);
        return 3;
    }
    if (c > 0x10ffff) return 0;
    p[0] = 0xf0 | (c >> 18); p[1] = 0x80 | ((c >> 12) & 0x3f); p[2] = 0x80 | ((c >> 6) & 0x3f); p[3] = 0x80 | (c & 0x3f);
    return 4;
}

/* fingerprint_fixed(array, itemsize, is_unicode, out) -> -1, or the index of the first value that is
 * not valid Unicode. The values of a NumPy 'S' / 'U' array as NumPy gives them: trailing NULs are
 * padding and are not hashed; a 'U' value is hashed as its UTF-8. */
static PyObject *k_fingerprint_fixed(PyObject *self, PyObject *args) {
    PyObject *o_in, *o_out;
    Py_ssize_t itemsize;
    int unicode;
    if (!PyArg_ParseTuple(args, "OnpO", &o_in, &itemsize, &unicode, &o_out)) return NULL;
    if (itemsize <= 0 || (unicode && itemsize % 4)) return PyErr_Format(PyExc_ValueError, "bad itemsize %zd", itemsize);
    Py_buffer in, out;
    if (get_in(o_in, &in) < 0) return NULL;
    Py_ssize_t count = in.len / itemsize;
    if (get_out(o_out, &out, count) < 0) { PyBuffer_Release(&in); return NULL; }
    const unsigned char *src = (const unsigned char *)in.buf;
    u64 *dst = (u64 *)out.buf;
    Py_ssize_t bad = -1;
    unsigned char *scratch = NULL;
    if (unicode) {
        scratch = (unsigned char *)PyMem_RawMalloc((size_t)itemsize + 1);  /* 4 UTF-8 bytes per code point at most */
        if (!scratch) { PyBuffer_Release(&in); PyBuffer_Release(&out); return PyErr_NoMemory(); }
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        const unsigned char *item = src + i * itemsize;
        if (!unicode) {
            Py_ssize_t n = itemsize;
            while (n > 0 && item[n - 1] == 0) n--;
            dst[i] = fingerprint64(item, (size_t)n);
            continue;
        }
        Py_ssize_t chars = itemsize / 4;
        u32 c;
        while (chars > 0) {
            memcpy(&c, item + 4 * (chars - 1), 4);
            if (c) break;
            chars--;
        }
        size_t n = 0;
        int ok = 1;
        for (Py_ssize_t j = 0; j < chars; j++) {
            memcpy(&c, item + 4 * j, 4);
            int len = utf8_of(c, scratch + n);
            if (!len) { ok = 0; break; }
            n += (size_t)len;
        }
        if (!ok) { bad = i; break; }
        dst[i] = fingerprint64(scratch, n);
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(scratch);
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    return PyLong_FromSsize_t(bad);
}

/* ---------------------------------------------------------------- Python values */

#define KIND_STRING 1
#define KIND_INT 2

/* The fingerprint of one value if it is a fast case: an exact str (its UTF-8), exact bytes, or an
 * exact int within int64 / uint64 (its 64 bits). Returns its kind, or 0 for any other value (the
 * caller applies the Python value rule). Never leaves an exception set. */
static inline int value_fingerprint(PyObject *v, u64 *fp) {
    if (PyUnicode_CheckExact(v)) {
        Py_ssize_t n;
        /* An ASCII str's own data; any other's UTF-8, cached in the object. A lone surrogate raises. */
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        if (!s) { PyErr_Clear(); return 0; }
        *fp = fingerprint64((const unsigned char *)s, (size_t)n);
        return KIND_STRING;
    }
    if (PyBytes_CheckExact(v)) {
        *fp = fingerprint64((const unsigned char *)PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v));
        return KIND_STRING;
    }
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (!overflow) {
            if (x == -1 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
            *fp = (u64)x;
            return KIND_INT;
        }
        if (overflow > 0) {
            unsigned long long y = PyLong_AsUnsignedLongLong(v);
            if (y == (unsigned long long)-1 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
            *fp = (u64)y;
            return KIND_INT;
        }
        return 0;
    }
    return 0;
}

/* Objects of a column are scattered over the heap: fetching the header and the first bytes of the
 * object some rows ahead hides most of the memory latency of a column of distinct long strings. */
#define PREFETCH_AHEAD 8
static inline void prefetch_object(const void *p) {
#if defined(__GNUC__) || defined(__clang__)
    const char *c = (const char *)p;
    __builtin_prefetch(c);
    __builtin_prefetch(c + 64);
    __builtin_prefetch(c + 128);
    __builtin_prefetch(c + 192);
    __builtin_prefetch(c + 256);
#else
    (void)p;
#endif
}

/* Borrowed items of a list, a tuple or a 1-D object array (buffer format 'O'). */
typedef struct {
    PyObject *fast;  /* a list or tuple */
    Py_buffer view;  /* an object array */
    int has_view;
    PyObject **items;
    Py_ssize_t count;
} items_t;

static int get_items(PyObject *obj, items_t *it) {
    it->fast = NULL;
    it->has_view = 0;
    if (PyList_Check(obj) || PyTuple_Check(obj)) {
        it->fast = obj;
        Py_INCREF(obj);
        it->items = PySequence_Fast_ITEMS(obj);
        it->count = PySequence_Fast_GET_SIZE(obj);
        return 0;
    }
    if (PyObject_GetBuffer(obj, &it->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    it->has_view = 1;
    if (!it->view.format || strcmp(it->view.format, "O") != 0 || it->view.itemsize != sizeof(PyObject *)) {
        PyBuffer_Release(&it->view);
        it->has_view = 0;
        PyErr_SetString(PyExc_TypeError, "values must be a list, a tuple or a 1-D object array");
        return -1;
    }
    it->items = (PyObject **)it->view.buf;
    it->count = it->view.len / (Py_ssize_t)sizeof(PyObject *);
    return 0;
}

static void release_items(items_t *it) {
    Py_XDECREF(it->fast);
    if (it->has_view) PyBuffer_Release(&it->view);
}

/* fingerprint_objects(values, out) -> int. Fingerprints of a list / tuple / object array of exact
 * str, bytes or int into out. Returns the kinds seen (1 string, 2 int, 3 both; 0 when empty), or
 * -1 - i when value i is not a fast case (out is then partly written). */
static PyObject *k_fingerprint_objects(PyObject *self, PyObject *args) {
    PyObject *o_values, *o_out;
    if (!PyArg_ParseTuple(args, "OO", &o_values, &o_out)) return NULL;
    items_t it;
    if (get_items(o_values, &it) < 0) return NULL;
    Py_buffer out;
    if (get_out(o_out, &out, it.count) < 0) { release_items(&it); return NULL; }
    u64 *dst = (u64 *)out.buf;
    long kinds = 0;
    for (Py_ssize_t i = 0; i < it.count; i++) {
        if (i + PREFETCH_AHEAD < it.count) prefetch_object(it.items[i + PREFETCH_AHEAD]);
        int kind = value_fingerprint(it.items[i], dst + i);
        if (!kind) { kinds = -1 - (long)i; break; }
        kinds |= kind;
    }
    PyBuffer_Release(&out);
    release_items(&it);
    return PyLong_FromLong(kinds);
}

#define FOLD_BLOCK 512

/* fold(seed, columns, modulus, out): out[i] = fold of FingerprintCat64 from seed over columns[j][i],
 * then % modulus (unless 0). Every column is a uint64 buffer of len(out) values. */
static PyObject *k_fold(PyObject *self, PyObject *args) {
    unsigned long long seed, modulus;
    PyObject *o_columns, *o_out;
    if (!PyArg_ParseTuple(args, "KOKO", &seed, &o_columns, &modulus, &o_out)) return NULL;
    PyObject *columns = PySequence_Fast(o_columns, "columns must be a sequence");
    if (!columns) return NULL;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(columns);
    if (k < 1 || k > 64) { Py_DECREF(columns); return PyErr_Format(PyExc_ValueError, "fold takes 1 to 64 columns, not %zd", k); }
    Py_buffer views[64], out;
    const u64 *src[64];
    Py_ssize_t got = 0;
    if (PyObject_GetBuffer(o_out, &out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) { Py_DECREF(columns); return NULL; }
    Py_ssize_t n = out.len / 8;
    for (; got < k; got++) {
        if (get_in(PySequence_Fast_GET_ITEM(columns, got), &views[got]) < 0) goto fail;
        if (views[got].len < n * 8) {
            PyErr_Format(PyExc_ValueError, "column %zd holds %zd bytes, %zd are needed", got, views[got].len, n * 8);
            PyBuffer_Release(&views[got]);
            goto fail;
        }
        src[got] = (const u64 *)views[got].buf;
    }
    u64 *dst = (u64 *)out.buf;
    modulo_t mod = modulo_of(modulus);
    Py_BEGIN_ALLOW_THREADS
    /* A block of rows a column at a time: each inner loop is one cat64 per row with no dependency
     * between rows, which the CPU overlaps (a row at a time, each row's chain of multiplies waits). */
    for (Py_ssize_t lo = 0; lo < n; lo += FOLD_BLOCK) {
        Py_ssize_t m = n - lo < FOLD_BLOCK ? n - lo : FOLD_BLOCK;
        u64 *h = dst + lo;
        const u64 *c = src[0] + lo;
        for (Py_ssize_t i = 0; i < m; i++) h[i] = cat64(seed, c[i]);
        for (Py_ssize_t j = 1; j < k; j++) {
            c = src[j] + lo;
            for (Py_ssize_t i = 0; i < m; i++) h[i] = cat64(h[i], c[i]);
        }
        if (modulus)
            for (Py_ssize_t i = 0; i < m; i++) h[i] = modulo(h[i], &mod);
    }
    Py_END_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < k; j++) PyBuffer_Release(&views[j]);
    PyBuffer_Release(&out);
    Py_DECREF(columns);
    Py_RETURN_NONE;
fail:
    for (Py_ssize_t j = 0; j < got; j++) PyBuffer_Release(&views[j]);
    PyBuffer_Release(&out);
    Py_DECREF(columns);
    return NULL;
}

/* ---------------------------------------------------------------- one element at a time */

/* A compiled plan for crossing mappings one by one (see cross_mapping). */
typedef struct {
    PyObject_HEAD
    Py_ssize_t num_features;
    PyObject *features;  /* tuple of str keys */
    char *declared;      /* per feature: 0 any, 1 string, 2 int */
    Py_ssize_t num_crosses;
    PyObject *names;     /* tuple of str: the output field per cross */
    u64 *seeds;
    u64 *moduli;
    Py_ssize_t *starts;  /* cross c folds members[starts[c]:starts[c+1]] */
    Py_ssize_t *members;
    PyObject *drop;      /* tuple of keys removed from the output (keep_inputs=False), or empty */
    PyObject *guarded;   /* tuple of names that must not already be a key of the input */
} PlanObject;

static void plan_dealloc(PlanObject *p) {
    Py_XDECREF(p->features);
    Py_XDECREF(p->names);
    Py_XDECREF(p->drop);
    Py_XDECREF(p->guarded);
    PyMem_Free(p->declared);
    PyMem_Free(p->seeds);
    PyMem_Free(p->moduli);
    PyMem_Free(p->starts);
    PyMem_Free(p->members);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "beam_cross.core._kernel.Plan",
    .tp_basicsize = sizeof(PlanObject),
    .tp_dealloc = (destructor)plan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A compiled crossing plan (make_plan).",
};

/* make_plan(features, declared, crosses, drop, guarded): features a tuple of str; declared a bytes
 * of one code per feature (0 any, 1 string, 2 int); crosses a tuple of (name, seed, modulus,
 * tuple of feature indices); drop and guarded tuples of keys. */
static PyObject *k_make_plan(PyObject *self, PyObject *args) {
    PyObject *features, *declared, *crosses, *drop, *guarded;
    if (!PyArg_ParseTuple(args, "O!SO!O!O!", &PyTuple_Type, &features, &declared, &PyTuple_Type, &crosses,
                          &PyTuple_Type, &drop, &PyTuple_Type, &guarded))
        return NULL;
    Py_ssize_t nf = PyTuple_GET_SIZE(features), nc = PyTuple_GET_SIZE(crosses);
    if (PyBytes_GET_SIZE(declared) != nf) return PyErr_Format(PyExc_ValueError, "declared needs one code per feature");
    if (nf > 64) return PyErr_Format(PyExc_ValueError, "a plan takes at most 64 features, not %zd", nf);
    PlanObject *p = PyObject_New(PlanObject, &PlanType);
    if (!p) return NULL;
    p->num_features = nf;
    p->num_crosses = nc;
    p->features = features; Py_INCREF(features);
    p->drop = drop; Py_INCREF(drop);
    p->guarded = guarded; Py_INCREF(guarded);
    p->names = PyTuple_New(nc);
    p->declared = PyMem_Malloc(nf + 1);
    p->seeds = PyMem_Malloc(sizeof(u64) * (nc + 1));
    p->moduli = PyMem_Malloc(sizeof(u64) * (nc + 1));
    p->starts = PyMem_Malloc(sizeof(Py_ssize_t) * (nc + 1));
    p->members = NULL;
    if (!p->names || !p->declared || !p->seeds || !p->moduli || !p->starts) goto fail;
    memcpy(p->declared, PyBytes_AS_STRING(declared), nf);
    Py_ssize_t total = 0;
    for (Py_ssize_t c = 0; c < nc; c++) {
        PyObject *cross = PyTuple_GET_ITEM(crosses, c);
        if (!PyTuple_Check(cross) || PyTuple_GET_SIZE(cross) != 4 || !PyTuple_Check(PyTuple_GET_ITEM(cross, 3))) {
            PyErr_SetString(PyExc_TypeError, "a cross is (name, seed, modulus, feature indices)");
            goto fail;
        }
        total += PyTuple_GET_SIZE(PyTuple_GET_ITEM(cross, 3));
    }
    p->members = PyMem_Malloc(sizeof(Py_ssize_t) * (total + 1));
    if (!p->members) goto fail;
    Py_ssize_t m = 0;
    for (Py_ssize_t c = 0; c < nc; c++) {
        PyObject *cross = PyTuple_GET_ITEM(crosses, c);
        PyObject *name = PyTuple_GET_ITEM(cross, 0);
        Py_INCREF(name);
        PyTuple_SET_ITEM(p->names, c, name);
        p->seeds[c] = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(cross, 1));
        p->moduli[c] = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(cross, 2));
        if (PyErr_Occurred()) goto fail;
        p->starts[c] = m;
        PyObject *idx = PyTuple_GET_ITEM(cross, 3);
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(idx); j++) {
            Py_ssize_t f = PyLong_AsSsize_t(PyTuple_GET_ITEM(idx, j));
            if (f < 0 || f >= nf) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a feature index is out of range");
                goto fail;
            }
            p->members[m++] = f;
        }
    }
    p->starts[nc] = m;
    return (PyObject *)p;
fail:
    Py_DECREF(p);
    return NULL;
}

/* cross_mapping(plan, mapping) -> dict or None. For a dict whose crossed features are all fast
 * cases, a new dict: the mapping's items (less plan.drop) plus one int per cross. None when any
 * feature is absent, not a fast case or not of its declared kind, or a guarded name is already a
 * key: the caller then crosses the element on the general path, which says why. */
static PyObject *k_cross_mapping(PyObject *self, PyObject *args) {
    PyObject *o_plan, *mapping;
    if (!PyArg_ParseTuple(args, "O!O!", &PlanType, &o_plan, &PyDict_Type, &mapping)) return NULL;
    PlanObject *p = (PlanObject *)o_plan;
    u64 fps[64];
    for (Py_ssize_t f = 0; f < p->num_features; f++) {
        PyObject *v = PyDict_GetItemWithError(mapping, PyTuple_GET_ITEM(p->features, f));
        if (!v) {
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_NONE;
        }
        int kind = value_fingerprint(v, fps + f);
        if (!kind || (p->declared[f] && p->declared[f] != kind)) Py_RETURN_NONE;
    }
    for (Py_ssize_t g = 0; g < PyTuple_GET_SIZE(p->guarded); g++) {
        int has = PyDict_Contains(mapping, PyTuple_GET_ITEM(p->guarded, g));
        if (has < 0) return NULL;
        if (has) Py_RETURN_NONE;
    }
    PyObject *out = PyDict_Copy(mapping);
    if (!out) return NULL;
    for (Py_ssize_t d = 0; d < PyTuple_GET_SIZE(p->drop); d++) {
        if (PyDict_DelItem(out, PyTuple_GET_ITEM(p->drop, d)) < 0) {
            if (!PyErr_ExceptionMatches(PyExc_KeyError)) { Py_DECREF(out); return NULL; }
            PyErr_Clear();
        }
    }
    for (Py_ssize_t c = 0; c < p->num_crosses; c++) {
        u64 h = p->seeds[c];
        for (Py_ssize_t m = p->starts[c]; m < p->starts[c + 1]; m++) h = cat64(h, fps[p->members[m]]);
        if (p->moduli[c]) h %= p->moduli[c];
        PyObject *bin = PyLong_FromLongLong((long long)h);  /* a modulus <= 2**63 - 1 keeps it in int64 */
        if (!bin || PyDict_SetItem(out, PyTuple_GET_ITEM(p->names, c), bin) < 0) {
            Py_XDECREF(bin);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(bin);
    }
    return out;
}

/* offset_steps(offsets, width) -> (first, unit): over offsets of `width` bytes (4 or 8), the index of
 * the first step that decreases (-1 if none) and whether every step is exactly 1, in one pass with
 * no temporary arrays. */
static PyObject *k_offset_steps(PyObject *self, PyObject *args) {
    PyObject *o_off;
    int width;
    if (!PyArg_ParseTuple(args, "Oi", &o_off, &width)) return NULL;
    if (width != 4 && width != 8) return PyErr_Format(PyExc_ValueError, "offset width must be 4 or 8, not %d", width);
    Py_buffer off;
    if (get_in(o_off, &off) < 0) return NULL;
    Py_ssize_t count = off.len / width;
    Py_ssize_t first = -1;
    int unit = 1;
    const unsigned char *p = (const unsigned char *)off.buf;
    for (Py_ssize_t i = 0; i + 1 < count; i++) {
        int64_t a, b;
        if (width == 4) {
            int32_t o[2];
            memcpy(o, p + 4 * i, 8);
            a = o[0]; b = o[1];
        } else {
            int64_t o[2];
            memcpy(o, p + 8 * i, 16);
            a = o[0]; b = o[1];
        }
        if (b < a) { first = i; unit = 0; break; }
        unit &= (b - a == 1);
    }
    PyBuffer_Release(&off);
    return Py_BuildValue("nO", first, unit ? Py_True : Py_False);
}

/* fingerprint64(value) -> int: Fingerprint64 of bytes-like data or of a str's UTF-8. */
static PyObject *k_fingerprint64(PyObject *self, PyObject *value) {
    if (PyUnicode_Check(value)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(value, &n);
        if (!s) return NULL;
        return PyLong_FromUnsignedLongLong(fingerprint64((const unsigned char *)s, (size_t)n));
    }
    Py_buffer view;
    if (PyObject_GetBuffer(value, &view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    u64 fp = fingerprint64((const unsigned char *)view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(fp);
}


/* ---------------------------------------------------------------- transforms: Bucketize, Lookup */

#define BUCKET_COUNTED 32
#define BUCKET_BLOCK 1024

/* bucketize(values, is_double, boundaries, out): out[i] = the number of boundaries <= values[i] (float32,
 * or float64 rounded to float32), both float32, as
 * std::upper_bound counts them in TF's Bucketize kernel. A subnormal value compares as 0, as TF's
 * kernels run with denormals flushed to zero (the caller flushes the boundaries); a NaN is above every
 * boundary (upper_bound never finds NaN < b). Up to BUCKET_COUNTED boundaries, a vectorized count of
 * the boundaries b with !(value < b), the same index; beyond, a branch-free binary search. */
static inline float flushed(float v) { return (v < FLT_MIN && v > -FLT_MIN) ? 0.0f : v; }

static PyObject *k_bucketize(PyObject *self, PyObject *args) {
    PyObject *o_values, *o_bounds, *o_out;
    int is_double;
    if (!PyArg_ParseTuple(args, "OpOO", &o_values, &is_double, &o_bounds, &o_out)) return NULL;
    Py_buffer values, bounds, out;
    if (get_in(o_values, &values) < 0) return NULL;
    if (get_in(o_bounds, &bounds) < 0) { PyBuffer_Release(&values); return NULL; }
    Py_ssize_t count = values.len / (Py_ssize_t)(is_double ? sizeof(double) : sizeof(float));
    if (get_out(o_out, &out, count) < 0) { PyBuffer_Release(&values); PyBuffer_Release(&bounds); return NULL; }
    const float *x = (const float *)values.buf;
    const double *xd = (const double *)values.buf;
    const float *b = (const float *)bounds.buf;
    size_t n = (size_t)(bounds.len / (Py_ssize_t)sizeof(float));
    int64_t *dst = (int64_t *)out.buf;
    Py_BEGIN_ALLOW_THREADS
    float f[BUCKET_BLOCK];
    int64_t acc[BUCKET_BLOCK];
    for (Py_ssize_t i0 = 0; i0 < count; i0 += BUCKET_BLOCK) {
        Py_ssize_t m = count - i0 < BUCKET_BLOCK ? count - i0 : BUCKET_BLOCK;
        /* A float64 is rounded to float32 first (to nearest, as TF's Cast and NumPy's astype). */
        if (is_double) for (Py_ssize_t j = 0; j < m; j++) f[j] = flushed((float)xd[i0 + j]);
        else for (Py_ssize_t j = 0; j < m; j++) f[j] = flushed(x[i0 + j]);
        if (n <= BUCKET_COUNTED) {
            /* Few boundaries: count !(f < b) a boundary at a time (vectorized). */
            for (Py_ssize_t j = 0; j < m; j++) acc[j] = 0;
            for (size_t k = 0; k < n; k++) {
                float bk = b[k];
                for (Py_ssize_t j = 0; j < m; j++) acc[j] += !(f[j] < bk);
            }
        } else {
            for (Py_ssize_t j = 0; j < m; j++) {
                const float *first = b;
                size_t len = n;
                while (len > 0) {
                    size_t half = len >> 1;
                    int up = !(f[j] < first[half]);
                    first = up ? first + half + 1 : first;
                    len = up ? len - half - 1 : half;
                }
                acc[j] = (int64_t)(first - b);
            }
        }
        memcpy(dst + i0, acc, (size_t)m * sizeof(int64_t));
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&values);
    PyBuffer_Release(&bounds);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

/* A vocabulary's index: an open-addressing table of `mask + 1` entries of 4 words (a token's
 * fingerprint; its position << 32 | its length, all ones when empty; its first 16 bytes, zero-padded,
 * as two little-endian words), linear probing from fingerprint & mask; and the tokens in Arrow layout
 * (int64 offsets, data) for the bytes past the 16th. A value is found at an entry of its fingerprint
 * whose token has its bytes (the fingerprint only filters). A token of up to 16 bytes is compared in
 * its entry: one memory access per value. Values go a block at a time, each entry prefetched a block
 * ahead of its probe.
 *
 * The id of a value follows the lookup's rule: position + base when found, else
 * oov_base + fingerprint % oov_buckets, or `fallback` without OOV buckets (see core/lookup.py). */
typedef struct {
    const u64 *table;
    u64 mask;
    const int64_t *offsets;
    const unsigned char *data;
    int64_t base, oov_base, fallback;
    u64 oov_buckets;
} vocab_t;

#define LOOKUP_BLOCK 128
#define EMPTY_ENTRY 0xffffffffffffffffULL

static inline void prefetch(const void *p) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
}

/* The first 16 bytes of s (n bytes), zero-padded, as two little-endian words, without reading past s + n. */
static inline void prefix_words(const unsigned char *s, size_t n, u64 *w0, u64 *w1) {
    if (n >= 16) { *w0 = fetch64(s); *w1 = fetch64(s + 8); return; }
    if (n >= 8) { *w0 = fetch64(s); *w1 = n > 8 ? fetch64(s + n - 8) >> (8 * (16 - n)) : 0; return; }
    *w1 = 0;
    if (n >= 4) { *w0 = (u64)fetch32(s) | (((u64)fetch32(s + n - 4) >> (8 * (8 - n))) << 32); return; }
    u64 w = 0;
    for (size_t i = 0; i < n; i++) w |= (u64)s[i] << (8 * i);
    *w0 = w;
}

/* Whether the token of entry e holds the n bytes at s (w0, w1: their first 16, as prefix_words). */
static inline int entry_is(const vocab_t *v, const u64 *e, const unsigned char *s, size_t n, u64 w0, u64 w1) {
    if ((e[1] & 0xffffffffULL) != n || e[2] != w0 || e[3] != w1) return 0;
    if (n <= 16) return 1;
    int64_t p = (int64_t)(e[1] >> 32);
    return memcmp(v->data + v->offsets[p] + 16, s + 16, n - 16) == 0;
}

/* A block of values to look up: their bytes, their count, and where they start in the column. */
typedef struct {
    const unsigned char *s[LOOKUP_BLOCK];
    size_t n[LOOKUP_BLOCK];
    Py_ssize_t m, i0;
} block_t;

/* The fingerprints of a block, each value's table entry prefetched for probe_block. */
static void hash_block(const vocab_t *v, const block_t *b, u64 *fps) {
    for (Py_ssize_t j = 0; j < b->m; j++) {
        fps[j] = fingerprint64(b->s[j], b->n[j]);
        prefetch(v->table + 4 * (fps[j] & v->mask));
    }
}

/* The id of the n bytes at s, of fingerprint fp. The first entry of its chain is tried before the walk:
 * nine values in ten end there (the table is at most a quarter full). */
static inline int64_t probe_one(const vocab_t *v, const unsigned char *s, size_t n, u64 fp) {
    u64 w0, w1;
    prefix_words(s, n, &w0, &w1);
    for (u64 k = fp & v->mask;; k = (k + 1) & v->mask) {
        const u64 *e = v->table + 4 * k;
        if (e[1] == EMPTY_ENTRY) break;
        if (e[0] == fp && entry_is(v, e, s, n, w0, w1)) return (int64_t)(e[1] >> 32) + v->base;
    }
    if (v->oov_buckets) return v->oov_base + (int64_t)(fp % v->oov_buckets);
    return v->fallback;
}

/* The ids of a block whose fingerprints are known. */
static void probe_block(const vocab_t *v, const block_t *b, const u64 *fps, int64_t *ids) {
    for (Py_ssize_t j = 0; j < b->m; j++) ids[j] = probe_one(v, b->s[j], b->n[j], fps[j]);
}

/* Strings in Arrow layout (offsets of type T, checked by the caller), looked up a block at a time:
 * block b + 1 hashed (its entries prefetched) before block b is probed, without gathering the values. */
#define LOOKUP_OFFSETS(NAME, T)                                                                          \
    static void NAME(const vocab_t *v, const T *off, const unsigned char *data, Py_ssize_t count,       \
                     u64 *fps, int64_t *ids) {                                                           \
        u64 scratch[2][LOOKUP_BLOCK];                                                                    \
        int cur = 0;                                                                                     \
        for (Py_ssize_t i0 = 0; i0 < count; i0 += LOOKUP_BLOCK) {                                        \
            Py_ssize_t m = count - i0 < LOOKUP_BLOCK ? count - i0 : LOOKUP_BLOCK;                        \
            u64 *h = scratch[cur];                                                                       \
            for (Py_ssize_t j = 0; j < m; j++) {                                                         \
                const T *o = off + i0 + j;                                                               \
                h[j] = fingerprint64(data + o[0], (size_t)(o[1] - o[0]));                                \
                prefetch(v->table + 4 * (h[j] & v->mask));                                               \
            }                                                                                            \
            if (i0 > 0) {                                                                                \
                Py_ssize_t p0 = i0 - LOOKUP_BLOCK;                                                       \
                const u64 *g = scratch[cur ^ 1];                                                         \
                for (Py_ssize_t j = 0; j < LOOKUP_BLOCK; j++) {                                          \
                    const T *o = off + p0 + j;                                                           \
                    ids[p0 + j] = probe_one(v, data + o[0], (size_t)(o[1] - o[0]), g[j]);                \
                }                                                                                        \
                if (fps) memcpy(fps + p0, g, LOOKUP_BLOCK * sizeof(u64));                                \
            }                                                                                            \
            if (i0 + m == count) {                                                                       \
                for (Py_ssize_t j = 0; j < m; j++) {                                                     \
                    const T *o = off + i0 + j;                                                           \
                    ids[i0 + j] = probe_one(v, data + o[0], (size_t)(o[1] - o[0]), h[j]);                \
                }                                                                                        \
                if (fps) memcpy(fps + i0, h, (size_t)m * sizeof(u64));                                   \
            }                                                                                            \
            cur ^= 1;                                                                                    \
        }                                                                                                \
    }
LOOKUP_OFFSETS(lookup_offsets32, int32_t)
LOOKUP_OFFSETS(lookup_offsets64, int64_t)

/* Looks a column up a block at a time, software-pipelined: block b + 1 is gathered and hashed (its
 * entries prefetched) before block b is probed, so each entry has a whole block's time to arrive.
 * fill(ctx, block) gathers a block (returns 0, or -1 to stop: the caller reports why). The
 * fingerprints go through a two-block scratch, and to `fps` only when it is not NULL. */
static void lookup_column(const vocab_t *v, Py_ssize_t count, int (*fill)(void *, block_t *), void *ctx,
                          u64 *fps, int64_t *ids) {
    block_t blocks[2];
    u64 scratch[2][LOOKUP_BLOCK];
    int cur = 0;
    if (count <= 0) return;
    blocks[0].i0 = 0;
    blocks[0].m = count < LOOKUP_BLOCK ? count : LOOKUP_BLOCK;
    if (fill(ctx, &blocks[0]) < 0) return;
    hash_block(v, &blocks[0], scratch[0]);
    for (;;) {
        block_t *b = &blocks[cur], *next = &blocks[cur ^ 1];
        Py_ssize_t start = b->i0 + b->m;
        int more = start < count;
        if (more) {
            next->i0 = start;
            next->m = count - start < LOOKUP_BLOCK ? count - start : LOOKUP_BLOCK;
            if (fill(ctx, next) < 0) more = -1;
            else hash_block(v, next, scratch[cur ^ 1]);
        }
        probe_block(v, b, scratch[cur], ids + b->i0);
        if (fps) memcpy(fps + b->i0, scratch[cur], (size_t)b->m * sizeof(u64));
        if (more <= 0) return;
        cur ^= 1;
    }
}

typedef struct {
    Py_buffer table, offsets, data;
    int held;
} vocab_views_t;

static void release_vocab(vocab_views_t *w) {
    Py_buffer *views[3] = {&w->table, &w->offsets, &w->data};
    for (int i = 0; i < w->held; i++) PyBuffer_Release(views[i]);
    w->held = 0;
}

static int get_vocab(PyObject *o_table, unsigned long long mask, PyObject *o_offsets, PyObject *o_data,
                     vocab_views_t *w, vocab_t *v) {
    w->held = 0;
    PyObject *objs[3] = {o_table, o_offsets, o_data};
    Py_buffer *views[3] = {&w->table, &w->offsets, &w->data};
    for (int i = 0; i < 3; i++) {
        if (get_in(objs[i], views[i]) < 0) { release_vocab(w); return -1; }
        w->held = i + 1;
    }
    if (w->table.len != (Py_ssize_t)((mask + 1) * 32)) {
        release_vocab(w);
        PyErr_SetString(PyExc_ValueError, "the vocabulary table must hold mask + 1 entries of 4 words");
        return -1;
    }
    v->table = (const u64 *)w->table.buf;
    v->mask = (u64)mask;
    v->offsets = (const int64_t *)w->offsets.buf;
    v->data = (const unsigned char *)w->data.buf;
    return 0;
}

typedef struct {
    const unsigned char *offsets;
    int width;
    const unsigned char *data;
    long long size;
    Py_ssize_t bad;  /* the first string whose offsets decrease or leave the data, or -1 */
} buffers_ctx;

/* lookup_buffers(offsets, width, data, table, mask, vocab_offsets, vocab_data, rule, out_ids, out_fps):
 * for string i = data[offsets[i]:offsets[i+1]] (offsets of `width` bytes), its id under
 * rule = (base, oov_base, oov_buckets, fallback) and its Fingerprint64 (out_fps may be None: ids only). Raises ValueError on offsets
 * outside the data. */
static PyObject *k_lookup_buffers(PyObject *self, PyObject *args) {
    PyObject *o_off, *o_data, *o_table, *o_voff, *o_vdata, *o_pos, *o_fps;
    int width;
    unsigned long long mask;
    long long r_base, r_oov_base, r_fallback;
    unsigned long long r_buckets;
    if (!PyArg_ParseTuple(args, "OiOOKOO(LLKL)OO", &o_off, &width, &o_data, &o_table, &mask, &o_voff, &o_vdata,
                          &r_base, &r_oov_base, &r_buckets, &r_fallback, &o_pos, &o_fps))
        return NULL;
    if (width != 4 && width != 8) return PyErr_Format(PyExc_ValueError, "offset width must be 4 or 8, not %d", width);
    vocab_views_t w;
    vocab_t v;
    if (get_vocab(o_table, mask, o_voff, o_vdata, &w, &v) < 0) return NULL;
    v.base = r_base; v.oov_base = r_oov_base; v.oov_buckets = r_buckets; v.fallback = r_fallback;
    Py_buffer off, data, pos, fps;
    if (get_in(o_off, &off) < 0) { release_vocab(&w); return NULL; }
    if (get_in(o_data, &data) < 0) { release_vocab(&w); PyBuffer_Release(&off); return NULL; }
    Py_ssize_t count = off.len / width - 1;
    if (count < 0) count = 0;
    if (get_out(o_pos, &pos, count) < 0) { release_vocab(&w); PyBuffer_Release(&off); PyBuffer_Release(&data); return NULL; }
    int want_fps = o_fps != Py_None;
    if (want_fps && get_out(o_fps, &fps, count) < 0) {
        release_vocab(&w); PyBuffer_Release(&off); PyBuffer_Release(&data); PyBuffer_Release(&pos); return NULL;
    }
    buffers_ctx ctx = {(const unsigned char *)off.buf, width, (const unsigned char *)data.buf, (long long)data.len, -1};
    Py_BEGIN_ALLOW_THREADS
    /* The offsets first: non-decreasing, inside the data. */
    for (Py_ssize_t i = 0; i < count && ctx.bad < 0; i++) {
        long long lo, hi;
        if (width == 4) { int32_t o[2]; memcpy(o, ctx.offsets + 4 * i, 8); lo = o[0]; hi = o[1]; }
        else { int64_t o[2]; memcpy(o, ctx.offsets + 8 * i, 16); lo = o[0]; hi = o[1]; }
        if (lo < 0 || hi < lo || hi > ctx.size) ctx.bad = i;
    }
    if (ctx.bad < 0) {
        if (width == 4) lookup_offsets32(&v, (const int32_t *)off.buf, ctx.data, count, want_fps ? (u64 *)fps.buf : NULL, (int64_t *)pos.buf);
        else lookup_offsets64(&v, (const int64_t *)off.buf, ctx.data, count, want_fps ? (u64 *)fps.buf : NULL, (int64_t *)pos.buf);
    }
    Py_END_ALLOW_THREADS
    Py_ssize_t bad = ctx.bad;
    release_vocab(&w);
    PyBuffer_Release(&off);
    PyBuffer_Release(&data);
    PyBuffer_Release(&pos);
    if (want_fps) PyBuffer_Release(&fps);
    if (bad >= 0) return PyErr_Format(PyExc_ValueError, "string %zd: its offsets decrease or point outside the data", bad);
    Py_RETURN_NONE;
}

typedef struct {
    PyObject **items;
    Py_ssize_t count;
    Py_ssize_t bad;  /* the first value that is not an exact str (valid Unicode) or bytes, or -1 */
} objects_ctx;

static int fill_from_objects(void *context, block_t *b) {
    objects_ctx *c = (objects_ctx *)context;
    for (Py_ssize_t j = 0; j < b->m; j++) {
        Py_ssize_t i = b->i0 + j;
        if (i + PREFETCH_AHEAD < c->count) prefetch_object(c->items[i + PREFETCH_AHEAD]);
        PyObject *value = c->items[i];
        Py_ssize_t len;
        const char *text;
        if (PyUnicode_CheckExact(value)) {
            text = PyUnicode_AsUTF8AndSize(value, &len);
            if (!text) { PyErr_Clear(); c->bad = i; return -1; }
        } else if (PyBytes_CheckExact(value)) {
            text = PyBytes_AS_STRING(value);
            len = PyBytes_GET_SIZE(value);
        } else { c->bad = i; return -1; }
        b->s[j] = (const unsigned char *)text;
        b->n[j] = (size_t)len;
    }
    return 0;
}

/* lookup_objects(values, table, mask, vocab_offsets, vocab_data, rule, out_ids, out_fps) -> -1, or the
 * index of the first value that is not an exact str (valid Unicode, as its UTF-8) or bytes (the caller
 * then applies the value rule in Python). The id (see lookup_buffers) and fingerprint of each value. */
static PyObject *k_lookup_objects(PyObject *self, PyObject *args) {
    PyObject *o_values, *o_table, *o_voff, *o_vdata, *o_pos, *o_fps;
    unsigned long long mask;
    long long base, oov_base, fallback;
    unsigned long long buckets;
    if (!PyArg_ParseTuple(args, "OOKOO(LLKL)OO", &o_values, &o_table, &mask, &o_voff, &o_vdata, &base, &oov_base,
                          &buckets, &fallback, &o_pos, &o_fps))
        return NULL;
    vocab_views_t w;
    vocab_t v;
    if (get_vocab(o_table, mask, o_voff, o_vdata, &w, &v) < 0) return NULL;
    v.base = base; v.oov_base = oov_base; v.oov_buckets = buckets; v.fallback = fallback;
    items_t it;
    if (get_items(o_values, &it) < 0) { release_vocab(&w); return NULL; }
    Py_buffer pos, fps;
    if (get_out(o_pos, &pos, it.count) < 0) { release_vocab(&w); release_items(&it); return NULL; }
    if (get_out(o_fps, &fps, it.count) < 0) { release_vocab(&w); release_items(&it); PyBuffer_Release(&pos); return NULL; }
    objects_ctx ctx = {it.items, it.count, -1};
    lookup_column(&v, it.count, fill_from_objects, &ctx, (u64 *)fps.buf, (int64_t *)pos.buf);
    Py_ssize_t bad = ctx.bad;
    release_vocab(&w);
    release_items(&it);
    PyBuffer_Release(&pos);
    PyBuffer_Release(&fps);
    return PyLong_FromSsize_t(bad);
}

/* build_vocab_table(fps, offsets, data, table, mask): the index of lookup_buffers for the tokens
 * data[offsets[p]:offsets[p+1]] (int64 offsets, each shorter than 4 GiB: the caller checks) of
 * fingerprints fps, inserted in position order into table (mask + 1 entries of 4 words), each at the
 * first empty entry of its chain from fps[p] & mask. The caller sizes the table so that it has room. */
static PyObject *k_build_vocab_table(PyObject *self, PyObject *args) {
    PyObject *o_fps, *o_off, *o_data, *o_table;
    unsigned long long mask;
    if (!PyArg_ParseTuple(args, "OOOOK", &o_fps, &o_off, &o_data, &o_table, &mask)) return NULL;
    Py_buffer fps, off, data, table;
    if (get_in(o_fps, &fps) < 0) return NULL;
    if (get_in(o_off, &off) < 0) { PyBuffer_Release(&fps); return NULL; }
    if (get_in(o_data, &data) < 0) { PyBuffer_Release(&fps); PyBuffer_Release(&off); return NULL; }
    Py_ssize_t count = fps.len / 8;
    if (get_out(o_table, &table, 4 * ((Py_ssize_t)mask + 1)) < 0) {
        PyBuffer_Release(&fps); PyBuffer_Release(&off); PyBuffer_Release(&data);
        return NULL;
    }
    if (off.len < (count + 1) * 8 || (unsigned long long)count > mask) {
        PyBuffer_Release(&fps); PyBuffer_Release(&off); PyBuffer_Release(&data); PyBuffer_Release(&table);
        PyErr_SetString(PyExc_ValueError, "the offsets must hold one more entry than the fingerprints, the table more entries");
        return NULL;
    }
    const u64 *fp = (const u64 *)fps.buf;
    const int64_t *o = (const int64_t *)off.buf;
    const unsigned char *d = (const unsigned char *)data.buf;
    u64 *t = (u64 *)table.buf;
    Py_BEGIN_ALLOW_THREADS
    for (u64 k = 0; k <= mask; k++) { t[4 * k] = 0; t[4 * k + 1] = EMPTY_ENTRY; t[4 * k + 2] = 0; t[4 * k + 3] = 0; }
    for (Py_ssize_t p = 0; p < count; p++) {
        u64 k = fp[p] & mask;
        while (t[4 * k + 1] != EMPTY_ENTRY) k = (k + 1) & mask;
        u64 *e = t + 4 * k;
        size_t n = (size_t)(o[p + 1] - o[p]);
        e[0] = fp[p];
        e[1] = ((u64)p << 32) | (u64)n;
        prefix_words(d + o[p], n, &e[2], &e[3]);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&fps); PyBuffer_Release(&off); PyBuffer_Release(&data); PyBuffer_Release(&table);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"fingerprint64", k_fingerprint64, METH_O, "Fingerprint64 of bytes-like data or of a str's UTF-8."},
    {"fingerprint_buffers", k_fingerprint_buffers, METH_VARARGS, "Fingerprint64 of strings in Arrow layout."},
    {"fingerprint_fixed", k_fingerprint_fixed, METH_VARARGS, "Fingerprint64 of a NumPy 'S' / 'U' array's values."},
    {"fingerprint_objects", k_fingerprint_objects, METH_VARARGS, "Fingerprints of exact str / bytes / int objects."},
    {"offset_steps", k_offset_steps, METH_VARARGS, "The first decreasing step of offsets, and whether all steps are 1."},
    {"fold", k_fold, METH_VARARGS, "The FingerprintCat64 fold of uint64 columns, then the modulo."},
    {"make_plan", k_make_plan, METH_VARARGS, "A compiled plan for cross_mapping."},
    {"cross_mapping", k_cross_mapping, METH_VARARGS, "One dict crossed by a plan, or None."},
    {"bucketize", k_bucketize, METH_VARARGS, "Bucket indices of float32 values (TF's Bucketize, denormals flushed)."},
    {"lookup_buffers", k_lookup_buffers, METH_VARARGS, "Vocabulary ids and fingerprints of strings in Arrow layout."},
    {"build_vocab_table", k_build_vocab_table, METH_VARARGS, "The open-addressing index of a vocabulary."},
    {"lookup_objects", k_lookup_objects, METH_VARARGS, "Vocabulary ids and fingerprints of exact str / bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernel", "The compiled crossing kernel of beam_cross (optional).", -1, methods,
};

PyMODINIT_FUNC PyInit__kernel(void) {
    if (PyType_Ready(&PlanType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    return m;
}
