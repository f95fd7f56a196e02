/* The common case of decide.features.FeatureSpace.action_set, compiled.
 *
 * decide/features.py is the definition of featurization and this file its
 * accelerator, as CPython's json module and _json are: the same rules, and the
 * same floating-point operations in the same order, so the vectors are equal
 * bit for bit (tests/unit/test_compiled.py compares the two on
 * generated documents). What the Python code spends per feature on building key
 * strings and calling numpy, this does with no allocation: a key's CRC-32 is
 * computed over its parts as they stand (CRC-32 streams, so crc(a + b) is
 * crc(b) continued from crc(a)).
 *
 * Anything outside the common case (an invalid value, a duplicate or missing
 * action id, a type other than the exact JSON ones, a non-finite number, an
 * integer beyond a double, deep nesting) makes it answer None, and the Python
 * code runs instead: it raises the precise FeatureError, or handles the rarity.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define FALLBACK 1 /* not the common case: let the Python code decide */
#define MAX_DEPTH 64

static const uint64_t LEFT = 0x9E3779B97F4A7C15ULL;
static const uint64_t RIGHT = 0xC2B2AE3D27D4EB4FULL;
static const uint64_t FINAL = 0xBF58476D1CE4E5B9ULL;

static uint32_t crc_table[256];
static PyObject *ID, *FEATURES; /* the interned keys "id" and "features", made once at import */

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

/* zlib.crc32(data, crc): the CRC-32 of the bytes hashed so far followed by data. */
static uint32_t crc_update(uint32_t crc, const char *data, Py_ssize_t size)
{
    const unsigned char *p = (const unsigned char *)data;
    crc = ~crc;
    while (size--)
        crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

typedef struct {
    uint64_t *hash;
    double *value;
    Py_ssize_t *row;
    Py_ssize_t size, capacity;
} Terms;

static void terms_free(Terms *t)
{
    PyMem_Free(t->hash);
    PyMem_Free(t->value);
    PyMem_Free(t->row);
}

/* Append one term, its value signed by bit 31 of its hash as _hashed signs it. */
static int push(Terms *t, uint32_t hash, double value, Py_ssize_t row)
{
    if (t->size == t->capacity) {
        Py_ssize_t capacity = t->capacity ? 2 * t->capacity : 64;
        uint64_t *hash_array = PyMem_Realloc(t->hash, capacity * sizeof(uint64_t));
        if (hash_array) t->hash = hash_array;
        double *value_array = PyMem_Realloc(t->value, capacity * sizeof(double));
        if (value_array) t->value = value_array;
        Py_ssize_t *row_array = PyMem_Realloc(t->row, capacity * sizeof(Py_ssize_t));
        if (row_array) t->row = row_array;
        if (!hash_array || !value_array || !row_array) {
            PyErr_NoMemory();
            return -1;
        }
        t->capacity = capacity;
    }
    t->hash[t->size] = hash;
    t->value[t->size] = hash >= 0x80000000U ? -value : value;
    t->row[t->size] = row;
    t->size++;
    return 0;
}

/* The UTF-8 bytes of an exact str, or NULL (no exception left) when it has none. */
static const char *utf8(PyObject *text, Py_ssize_t *size)
{
    const char *bytes = PyUnicode_AsUTF8AndSize(text, size);
    if (bytes == NULL)
        PyErr_Clear(); /* a lone surrogate: the Python code says what is wrong */
    return bytes;
}

/* A number's value as _walk_object takes it: exact floats and ints, finite. */
static int number(PyObject *value, double *out)
{
    if (PyFloat_CheckExact(value)) {
        *out = PyFloat_AS_DOUBLE(value);
        return isfinite(*out) ? 0 : FALLBACK;
    }
    *out = PyLong_AsDouble(value);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Clear(); /* beyond a double */
        return FALLBACK;
    }
    return 0;
}

static int walk_list(PyObject *items, uint32_t name, Terms *t, Py_ssize_t row)
{
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    PyObject **item = PySequence_Fast_ITEMS(items);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = item[i];
        double x;
        if (value == Py_None)
            continue;
        if (PyUnicode_CheckExact(value)) {
            Py_ssize_t size;
            const char *text = utf8(value, &size);
            if (!text) return FALLBACK;
            if (push(t, crc_update(crc_update(name, "=", 1), text, size), 1.0, row) < 0) return -1;
        } else if (PyFloat_CheckExact(value) || PyLong_CheckExact(value)) { /* bool is not an exact int */
            char position[32];
            int digits = snprintf(position, sizeof position, "[%zd]", i);
            if (number(value, &x)) return FALLBACK;
            if (push(t, crc_update(name, position, digits), x, row) < 0) return -1;
        } else {
            return FALLBACK;
        }
    }
    return 0;
}

/* One feature object whose keys live in the namespace hashed as `space` (`space_size` bytes long, 0 at top level). */
static int walk_object(PyObject *object, uint32_t space, Py_ssize_t space_size, Terms *t, Py_ssize_t row, int depth)
{
    PyObject *key, *value;
    Py_ssize_t position = 0;
    if (depth > MAX_DEPTH)
        return FALLBACK;
    while (PyDict_Next(object, &position, &key, &value)) {
        Py_ssize_t key_size, size;
        const char *text;
        double x;
        int status;
        if (value == Py_None)
            continue;
        if (!PyUnicode_CheckExact(key))
            return FALLBACK;
        const char *key_text = utf8(key, &key_size);
        if (!key_text) return FALLBACK;
        if (key_size > 0 && key_text[0] == '_')
            continue;
        uint32_t name = space_size ? crc_update(crc_update(space, "^", 1), key_text, key_size) : crc_update(0, key_text, key_size);
        if (PyUnicode_CheckExact(value)) {
            if (!(text = utf8(value, &size))) return FALLBACK;
            status = push(t, crc_update(crc_update(name, "=", 1), text, size), 1.0, row);
        } else if (PyBool_Check(value)) {
            status = push(t, value == Py_True ? crc_update(name, "=true", 5) : crc_update(name, "=false", 6), 1.0, row);
        } else if (PyFloat_CheckExact(value) || PyLong_CheckExact(value)) {
            if (number(value, &x)) return FALLBACK;
            status = push(t, name, x, row);
        } else if (PyDict_CheckExact(value)) {
            uint32_t inner = space_size ? crc_update(crc_update(space, ".", 1), key_text, key_size) : crc_update(0, key_text, key_size);
            status = walk_object(value, inner, space_size ? space_size + 1 + key_size : key_size, t, row, depth + 1);
        } else if (PyList_CheckExact(value) || PyTuple_CheckExact(value)) {
            status = walk_list(value, name, t, row);
        } else {
            return FALLBACK;
        }
        if (status) return status;
    }
    return 0;
}

/* _flatten_into: one object, or a list of objects (nulls skipped). */
static int walk_features(PyObject *features, Terms *t, Py_ssize_t row)
{
    if (features == NULL || features == Py_None)
        return 0;
    if (PyDict_CheckExact(features))
        return walk_object(features, 0, 0, t, row, 0);
    if (!PyList_CheckExact(features) && !PyTuple_CheckExact(features))
        return FALLBACK;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(features);
    PyObject **item = PySequence_Fast_ITEMS(features);
    for (Py_ssize_t i = 0; i < count; i++) {
        int status;
        if (item[i] == Py_None)
            continue;
        if (!PyDict_CheckExact(item[i]))
            return FALLBACK;
        if ((status = walk_object(item[i], 0, 0, t, row, 0)))
            return status;
    }
    return 0;
}

/* _pair_index for one pair. */
static Py_ssize_t pair_index(uint64_t left, uint64_t right, uint64_t dimension, int shift)
{
    uint64_t mixed = ((left * LEFT) ^ (right * RIGHT)) * FINAL;
    if (dimension == 1)
        return 0;
    if (shift)
        return (Py_ssize_t)(mixed >> shift);
    return (Py_ssize_t)(((mixed >> 32) * dimension) >> 32);
}

/* The ids, and each action's terms tagged with its row; FALLBACK for anything _collect_actions would refuse. */
static int collect_actions(PyObject *actions, PyObject *ids, Terms *t)
{
    uint32_t prefix = crc_update(0, "_id=", 4);
    Py_ssize_t count = PyList_GET_SIZE(ids);
    PyObject **item = PySequence_Fast_ITEMS(actions);
    PyObject *seen = PySet_New(NULL);
    int status = 0;
    if (!seen) return -1;
    for (Py_ssize_t row = 0; row < count && !status; row++) {
        PyObject *id;
        Py_ssize_t size;
        const char *text;
        if (!PyDict_CheckExact(item[row]) || !(id = PyDict_GetItemWithError(item[row], ID)) || !PyUnicode_CheckExact(id)
            || PyUnicode_GET_LENGTH(id) == 0 || !(text = utf8(id, &size))) {
            status = PyErr_Occurred() ? -1 : FALLBACK;
            break;
        }
        int duplicate = PySet_Contains(seen, id);
        if (duplicate) {
            status = duplicate < 0 ? -1 : FALLBACK;
            break;
        }
        if (PySet_Add(seen, id) < 0 || push(t, crc_update(prefix, text, size), 1.0, row) < 0) {
            status = -1;
            break;
        }
        Py_INCREF(id);
        PyList_SET_ITEM(ids, row, id);
        PyObject *features = PyDict_GetItemWithError(item[row], FEATURES);
        status = features || !PyErr_Occurred() ? walk_features(features, t, row) : -1;
    }
    Py_DECREF(seen);
    return status;
}

static int writable(PyObject *array, Py_buffer *view, Py_ssize_t size, const char *what)
{
    if (PyObject_GetBuffer(array, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->len != size * (Py_ssize_t)sizeof(double) || view->itemsize != sizeof(double) || strcmp(view->format, "d") != 0) {
        PyErr_Format(PyExc_ValueError, "%s must be a zeroed float64 array of %zd values", what, size);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(action_set_doc,
"action_set(context_features, actions, dimension, interactions, context, features)\n--\n\n"
"Fill the zeroed float64 arrays ``context`` (dimension) and ``features`` (len(actions) x dimension) as\n"
"FeatureSpace.action_set does, and return the action ids as a tuple; or return None, with the arrays\n"
"in any state, when the request is not the common case and the Python code must featurize it.");

static PyObject *action_set(PyObject *module, PyObject *args)
{
    PyObject *context_features, *actions, *context_array, *features_array;
    Py_ssize_t dimension;
    int interactions, status;
    Py_buffer context_view, features_view;
    Terms context = {0}, terms = {0};
    PyObject *ids = NULL, *result = NULL;

    if (!PyArg_ParseTuple(args, "OOnpOO:action_set", &context_features, &actions, &dimension, &interactions,
                          &context_array, &features_array))
        return NULL;
    if (dimension < 1) {
        PyErr_SetString(PyExc_ValueError, "dimension must be positive");
        return NULL;
    }
    if (!PyList_CheckExact(actions) && !PyTuple_CheckExact(actions))
        Py_RETURN_NONE;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(actions);
    if (writable(context_array, &context_view, dimension, "context") < 0)
        return NULL;
    if (writable(features_array, &features_view, k * dimension, "features") < 0) {
        PyBuffer_Release(&context_view);
        return NULL;
    }
    if (!(ids = PyList_New(k)))
        goto done;
    status = push(&context, crc_update(0, "_bias", 5), 1.0, 0);
    if (!status)
        status = walk_features(context_features, &context, 0);
    if (!status)
        status = collect_actions(actions, ids, &terms);
    if (status < 0)
        goto done;
    if (status == FALLBACK) {
        result = Py_NewRef(Py_None);
        goto done;
    }

    uint64_t d = (uint64_t)dimension;
    int shift = 0;
    if ((d & (d - 1)) == 0 && d > 1) {
        int bits = 0;
        while ((d >> bits) > 1) bits++;
        shift = 64 - bits;
    }
    double *vector = context_view.buf, *matrix = features_view.buf;
    for (Py_ssize_t i = 0; i < context.size; i++)
        vector[context.hash[i] % d] += context.value[i];
    Py_ssize_t crossed = interactions ? context.size : 1;
    for (Py_ssize_t c = 0; c < crossed; c++)
        for (Py_ssize_t a = 0; a < terms.size; a++)
            matrix[pair_index(context.hash[c], terms.hash[a], d, shift) + terms.row[a] * dimension]
                += context.value[c] * terms.value[a];
    Py_ssize_t bias = (Py_ssize_t)(context.hash[0] % d);
    for (Py_ssize_t row = 0; row < k; row++)
        matrix[row * dimension + bias] += context.value[0];
    result = PyList_AsTuple(ids);

done:
    Py_XDECREF(ids);
    terms_free(&context);
    terms_free(&terms);
    PyBuffer_Release(&context_view);
    PyBuffer_Release(&features_view);
    return result;
}

static PyMethodDef methods[] = {
    {"action_set", action_set, METH_VARARGS, action_set_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "decide._featurize",
    .m_doc = "Compiled common case of decide.features.FeatureSpace.action_set (see the C source's header).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__featurize(void)
{
    crc_init();
    if (!ID && !(ID = PyUnicode_InternFromString("id")))
        return NULL;
    if (!FEATURES && !(FEATURES = PyUnicode_InternFromString("features")))
        return NULL;
    return PyModule_Create(&module);
}
