/*
 * gslb.dns._packets: the batched UDP packet path (docs/performance.md,
 * "The compiled packet path").
 *
 * serve() reads up to a batch of datagrams with one recvmmsg(2), answers
 * every answer-cache hit it can here, hands the rest to the Python handler
 * (gslb.dns.server.Handler) one by one in the order they came, and sends
 * every response with one sendmmsg(2). A hit is what
 * gslb.dns.cache.AnswerCache.get would answer: the query's shape
 * (AnswerCache.shape: "U", the header from octet 2, the qname lower-cased in
 * ASCII, the rest as sent) found in the cache's table as (response, note,
 * variant), where variant is
 *   - None: the response as stored;
 *   - a Rotation (order: cyclic or random): its records moved on by one
 *     turn, or shuffled, as Rotation.apply moves them, from the same source;
 *   - a Draw (one outcome of a weighted draw): the outcome drawn as
 *     Draw.pick draws it, from the same source.
 * The response then gets the query's ID and its qname exactly as asked (the
 * 0x20 case echo), as in AnswerCache.get. The ECS option, NSID and every
 * other option of the query are part of the shape, so the stored response
 * already carries what they ask for. A query with a COOKIE option is looked
 * up without it (as AnswerCache._without_cookie keys it) and answered with
 * this client's cookie (RFC 9018's Server Cookie, signed with siphashc, the
 * library gslb.dns.cookies signs with), as Authority.cookie_patch answers
 * it; one that must get BADCOOKIE, and entries kept per client address, go
 * to the handler, which looks them up in Python.
 *
 * This module only touches the bytes; what the hits were (their notes,
 * how many of each) goes back to the caller, which counts them.
 * The pure-Python listener (gslb.dns.server._Udp) stays the reference:
 * tests/integration/test_packet_paths.py compares the two byte for byte.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Datagrams per call at most, and the largest datagram read whole. */
#define MAX_BATCH 64
#define MAX_DATAGRAM 65535
#define HEADER 12

typedef struct {
    unsigned char rx[MAX_BATCH][MAX_DATAGRAM];
    unsigned char tx[MAX_BATCH][MAX_DATAGRAM];
    unsigned char key[MAX_DATAGRAM];
    struct sockaddr_storage addr[MAX_BATCH];
    struct iovec rx_iov[MAX_BATCH], tx_iov[MAX_BATCH];
    struct mmsghdr rx_msg[MAX_BATCH], tx_msg[MAX_BATCH];
} Buffers;

/* One process, one thread answering (the event loop's, holding the GIL):
 * one set of buffers, allocated on first use. */
static Buffers *buffers;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The client's address as text, as Python's socket module gives it
 * (getnameinfo with NI_NUMERICHOST: "fe80::1%eth0" for a scoped one). */
static PyObject *
address_text(const struct sockaddr_storage *addr, socklen_t len)
{
    char host[NI_MAXHOST];
    if (getnameinfo((const struct sockaddr *)addr, len, host, sizeof host, NULL, 0,
                    NI_NUMERICHOST) != 0)
        host[0] = '\0';
    return PyUnicode_FromString(host);
}

typedef struct {
    PyObject *note;  /* a reference held */
    Py_ssize_t count;
} Counted;

static void
count_note(Counted *notes, int *distinct, PyObject *note)
{
    for (int j = 0; j < *distinct; j++) {
        if (notes[j].note == note) {
            notes[j].count++;
            return;
        }
    }
    Py_INCREF(note);
    notes[*distinct].note = note;
    notes[*distinct].count = 1;
    (*distinct)++;
}

/* The unsigned 64-bit value of ``number`` (a Python int), or -1 cast with
 * an exception set (the caller checks PyErr_Occurred). */
static unsigned long long
u64(PyObject *number)
{
    return PyLong_Check(number) ? PyLong_AsUnsignedLongLong(number)
                                : (PyErr_SetString(PyExc_TypeError, "not an int"),
                                   (unsigned long long)-1);
}

/* ``bits(width)`` (a random source's getrandbits), called again while the
 * value is above ``most``: how gslb.dns.cache draws (Draw.pick: 64 bits, at
 * most its accept_max; Rotation.apply's swaps, as
 * random.Random._randbelow_with_getrandbits: n.bit_length() bits, at most
 * n - 1). 0 with the value in ``*out``, -1 with an exception set (a value
 * that is no int of 0 to 2**64 - 1 included). */
static int
draw_at_most(PyObject *bits, int width, unsigned long long most, unsigned long long *out)
{
    PyObject *w = PyLong_FromLong(width);
    if (w == NULL)
        return -1;
    for (;;) {
        PyObject *drawn = PyObject_CallOneArg(bits, w);
        if (drawn == NULL)
            break;
        unsigned long long v = u64(drawn);
        Py_DECREF(drawn);
        if (PyErr_Occurred())
            break;
        if (v <= most) {
            Py_DECREF(w);
            *out = v;
            return 0;
        }
    }
    Py_DECREF(w);
    return -1;
}

/* The outcome a hit on a drawn entry answers, as gslb.dns.cache.Draw.pick
 * draws it: ``draw`` is (bits, cumulative, accept_max, outcomes); v =
 * bits(64), again while v > accept_max; the outcome at bisect_right
 * (cumulative, v % total). A borrowed (response, note) tuple, Py_None when
 * ``draw`` is not laid out so, NULL with an exception set. */
static PyObject *
drawn_outcome(PyObject *draw)
{
    if (PyTuple_GET_SIZE(draw) != 4)
        return Py_None;
    PyObject *bits = PyTuple_GET_ITEM(draw, 0), *cumulative = PyTuple_GET_ITEM(draw, 1);
    PyObject *outcomes = PyTuple_GET_ITEM(draw, 3);
    if (!PyTuple_CheckExact(cumulative) || !PyTuple_CheckExact(outcomes)
            || PyTuple_GET_SIZE(cumulative) < 1
            || PyTuple_GET_SIZE(cumulative) != PyTuple_GET_SIZE(outcomes))
        return Py_None;
    Py_ssize_t n = PyTuple_GET_SIZE(cumulative);
    unsigned long long accept_max = u64(PyTuple_GET_ITEM(draw, 2));
    unsigned long long total = u64(PyTuple_GET_ITEM(cumulative, n - 1));
    if (PyErr_Occurred())
        return NULL;
    if (total == 0)
        return Py_None;
    unsigned long long v;
    if (draw_at_most(bits, 64, accept_max, &v) < 0)
        return NULL;
    unsigned long long r = v % total;
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        unsigned long long c = u64(PyTuple_GET_ITEM(cumulative, mid));
        if (PyErr_Occurred())
            return NULL;
        if (r < c)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo >= n)
        return Py_None;
    PyObject *outcome = PyTuple_GET_ITEM(outcomes, lo);
    return PyTuple_CheckExact(outcome) && PyTuple_GET_SIZE(outcome) == 2 ? outcome : Py_None;
}

/* Records of one rotation moved here at most (more: the handler rotates them). */
#define MAX_ROTATED 256

/* Interned attribute names of gslb.dns.cache.Rotation, made at import. */
static PyObject *s_start, *s_size, *s_count, *s_shuffle, *s_turn, *s_bits;

/* Attribute ``name`` of ``obj`` as a C integer in 0..limit, or -1 (an
 * exception set when it was not read at all). */
static Py_ssize_t
small_attr(PyObject *obj, PyObject *name, Py_ssize_t limit)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL)
        return -1;
    Py_ssize_t n = PyLong_Check(value) ? PyLong_AsSsize_t(value) : -1;
    Py_DECREF(value);
    if (n == -1 && PyErr_Occurred())
        return -1;
    return n >= 0 && n <= limit ? n : -1;
}

/* A draw below ``n`` (n >= 1) as random.Random._randbelow_with_getrandbits
 * draws it: bits(k), k = n.bit_length(), again while >= n. -1 with an
 * exception set. */
static Py_ssize_t
below(PyObject *bits, Py_ssize_t n)
{
    int k = 0;
    for (size_t m = (size_t)n; m; m >>= 1)
        k++;
    unsigned long long r;
    return draw_at_most(bits, k, (unsigned long long)n - 1, &r) < 0 ? -1 : (Py_ssize_t)r;
}

/* ``stored`` (``size`` octets) copied into ``out`` with its leading records
 * in the order of the next hit, as gslb.dns.cache.Rotation.apply orders
 * them (moving its ``turn``, or shuffling from its ``bits``). 1 done, 0
 * when ``rotation`` is none this path can apply, -1 with an exception set. */
static int
rotate_into(PyObject *rotation, const unsigned char *stored, Py_ssize_t size,
            unsigned char *out)
{
    Py_ssize_t start = small_attr(rotation, s_start, size);
    Py_ssize_t rsize = start < 0 ? -1 : small_attr(rotation, s_size, size);
    Py_ssize_t count = rsize < 0 ? -1 : small_attr(rotation, s_count, MAX_ROTATED);
    if (count < 1 || rsize < 1 || start + rsize * count > size)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *shuffle = PyObject_GetAttr(rotation, s_shuffle);
    if (shuffle == NULL)
        return -1;
    int shuffled = PyObject_IsTrue(shuffle);
    Py_DECREF(shuffle);
    if (shuffled < 0)
        return -1;
    Py_ssize_t order[MAX_ROTATED];
    if (shuffled) {
        PyObject *bits = PyObject_GetAttr(rotation, s_bits);
        if (bits == NULL)
            return -1;
        for (Py_ssize_t i = 0; i < count; i++)
            order[i] = i;
        for (Py_ssize_t i = count - 1; i > 0; i--) {
            Py_ssize_t j = below(bits, i + 1);
            if (j < 0) {
                Py_DECREF(bits);
                return -1;
            }
            Py_ssize_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        Py_DECREF(bits);
    } else {
        Py_ssize_t turn = small_attr(rotation, s_turn, PY_SSIZE_T_MAX);
        if (turn < 0)
            return PyErr_Occurred() ? -1 : 0;
        turn = (turn + 1) % count;
        PyObject *moved = PyLong_FromSsize_t(turn);
        if (moved == NULL)
            return -1;
        int set = PyObject_SetAttr(rotation, s_turn, moved);
        Py_DECREF(moved);
        if (set < 0)
            return -1;
        for (Py_ssize_t i = 0; i < count; i++)
            order[i] = (turn + i) % count;
    }
    memcpy(out, stored, (size_t)start);
    for (Py_ssize_t i = 0; i < count; i++)
        memcpy(out + start + i * rsize, stored + start + order[i] * rsize, (size_t)rsize);
    Py_ssize_t stop = start + rsize * count;
    memcpy(out + stop, stored + stop, (size_t)(size - stop));
    return 1;
}

/* DNS Cookies (RFC 7873, server cookies of RFC 9018) as gslb.dns.cookies
 * makes them: the option code, octets, and the ages a Server Cookie may
 * have (gslb.dns.cookies.LIFETIME_S, FUTURE_S, REFRESH_S). */
#define OPTION_COOKIE 10
#define CLIENT_BYTES 8
#define REPLY_BYTES 24
#define LIFETIME_S 3600
#define FUTURE_S 300
#define REFRESH_S 1800
/* From the qname's zero octet to the first EDNS option (gslb.dns.cache._TO_OPTIONS). */
#define TO_OPTIONS 16

/* What serve() does with a query that has a COOKIE option. */
enum { COOKIES_TO_HANDLER, COOKIES_OFF, COOKIES_ON };

typedef struct {
    int mode;            /* COOKIES_TO_HANDLER, COOKIES_OFF (stored as is), COOKIES_ON */
    long long at;        /* epoch seconds of this batch (Cookies.clock) */
    int require;         /* Cookies.require: no valid Server Cookie, no answer */
    PyObject *secrets;   /* tuple of bytes, the current first (borrowed) */
    PyObject *siphash;   /* siphashc.siphash (borrowed) */
} CookieState;

/* Where the first COOKIE option of ``data`` lies, from its OPTION-CODE to
 * the end of its data, as gslb.dns.cache.cookie_span finds it (options well
 * formed up to it, its data 8 or 16 to 40 octets). 1 found, 0 not. */
static int
cookie_span(const unsigned char *data, Py_ssize_t len, Py_ssize_t end, Py_ssize_t *start,
            Py_ssize_t *stop)
{
    Py_ssize_t pos = end + TO_OPTIONS;
    while (pos + 4 <= len) {
        unsigned code = (unsigned)(data[pos] << 8 | data[pos + 1]);
        Py_ssize_t length = data[pos + 2] << 8 | data[pos + 3], after = pos + 4 + length;
        if (after > len)
            return 0;
        if (code == OPTION_COOKIE) {
            if (length != 8 && (length < 16 || length > 40))
                return 0;
            *start = pos;
            *stop = after;
            return 1;
        }
        pos = after;
    }
    return 0;
}

/* The Client-IP octets of ``addr`` (gslb.dns.cookies.client_ip): 4 for IPv4
 * and an IPv4-mapped IPv6 address, 16 for IPv6, 0 for anything else. */
static Py_ssize_t
client_ip(const struct sockaddr_storage *addr, unsigned char *ip)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (addr->ss_family == AF_INET) {
        memcpy(ip, &((const struct sockaddr_in *)addr)->sin_addr, 4);
        return 4;
    }
    if (addr->ss_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
        if (memcmp(a, mapped, 12) == 0) {
            memcpy(ip, a + 12, 4);
            return 4;
        }
        memcpy(ip, a, 16);
        return 16;
    }
    return 0;
}

/* SipHash-2-4 of ``n`` octets under ``secret``, by siphashc (the library
 * gslb.dns.cookies uses: never a hash of our own). 0 done, -1 with an
 * exception set. */
static int
sip(PyObject *siphash, PyObject *secret, const unsigned char *msg, Py_ssize_t n,
    unsigned long long *out)
{
    PyObject *data = PyBytes_FromStringAndSize((const char *)msg, n);
    if (data == NULL)
        return -1;
    PyObject *hash = PyObject_CallFunctionObjArgs(siphash, secret, data, NULL);
    Py_DECREF(data);
    if (hash == NULL)
        return -1;
    *out = u64(hash);
    Py_DECREF(hash);
    return PyErr_Occurred() ? -1 : 0;
}

/* The COOKIE option data to send (``reply``, REPLY_BYTES) to a query whose
 * COOKIE option data is ``option`` (``olen`` octets, well formed) from
 * Client-IP ``ip``, as gslb.dns.cookies.Cookies.reply makes it: a valid
 * Server Cookie younger than REFRESH_S made with the current secret is sent
 * back as it came, else a fresh one is made. 1 when ``option`` carried a
 * valid Server Cookie, 0 when not, -1 with an exception set. */
static int
cookie_reply(const CookieState *c, const unsigned char *option, Py_ssize_t olen,
             const unsigned char *ip, Py_ssize_t iplen, unsigned char *reply)
{
    unsigned char msg[CLIENT_BYTES + 8 + 16];
    int valid = 0, current = 0;
    long long age = 0;
    if (olen == REPLY_BYTES && option[CLIENT_BYTES] == 1) {
        const unsigned char *server = option + CLIENT_BYTES;
        unsigned long long stamp = (unsigned long long)server[4] << 24 | server[5] << 16
                                   | server[6] << 8 | server[7];
        age = (long long)(((unsigned long long)c->at - stamp) & 0xFFFFFFFFULL);
        if (age >= 0x80000000LL)
            age -= 0x100000000LL;
        if (age >= -FUTURE_S && age <= LIFETIME_S) {
            unsigned long long mac = 0;
            for (int b = 7; b >= 0; b--)
                mac = mac << 8 | server[8 + b];
            memcpy(msg, option, CLIENT_BYTES + 8);
            memcpy(msg + CLIENT_BYTES + 8, ip, (size_t)iplen);
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(c->secrets) && !valid; i++) {
                unsigned long long hash;
                if (sip(c->siphash, PyTuple_GET_ITEM(c->secrets, i), msg,
                        CLIENT_BYTES + 8 + iplen, &hash) < 0)
                    return -1;
                if (hash == mac) {
                    valid = 1;
                    current = i == 0;
                }
            }
        }
    }
    if (valid && current && age < REFRESH_S) {
        memcpy(reply, option, REPLY_BYTES);
        return 1;
    }
    /* fresh: Version 1, Reserved, Timestamp, Hash (RFC 9018 section 4.2) */
    unsigned long long at = (unsigned long long)c->at & 0xFFFFFFFFULL, hash;
    unsigned char head[8] = {1, 0, 0, 0, (unsigned char)(at >> 24), (unsigned char)(at >> 16),
                             (unsigned char)(at >> 8), (unsigned char)at};
    memcpy(msg, option, CLIENT_BYTES);
    memcpy(msg + CLIENT_BYTES, head, 8);
    memcpy(msg + CLIENT_BYTES + 8, ip, (size_t)iplen);
    if (sip(c->siphash, PyTuple_GET_ITEM(c->secrets, 0), msg, CLIENT_BYTES + 8 + iplen,
            &hash) < 0)
        return -1;
    memcpy(reply, option, CLIENT_BYTES);
    memcpy(reply + CLIENT_BYTES, head, 8);
    for (int b = 0; b < 8; b++)
        reply[16 + b] = (unsigned char)(hash >> (8 * b));
    return valid;
}

/* The response to a hit: the stored one (for a drawn entry, the outcome
 * drawn) with the query's ID and qname (AnswerCache.get), its note counted
 * in ``notes``. Returns its length, 0 when the entry is none this path
 * answers, -1 with an exception set. */
static Py_ssize_t
patch_hit(PyObject *found, const unsigned char *query, Py_ssize_t end, unsigned char *out,
          Counted *notes, int *distinct)
{
    if (!PyTuple_CheckExact(found) || PyTuple_GET_SIZE(found) != 3)
        return 0;
    PyObject *stored = PyTuple_GET_ITEM(found, 0), *note = PyTuple_GET_ITEM(found, 1);
    PyObject *variant = PyTuple_GET_ITEM(found, 2);
    int rotation = variant != Py_None && !PyTuple_Check(variant);  /* a Rotation is no tuple */
    if (variant != Py_None && !rotation) {
        /* a Draw (a NamedTuple: a tuple, not exactly) */
        if (PyTuple_CheckExact(variant))
            return 0;
        PyObject *outcome = drawn_outcome(variant);
        if (outcome == NULL)
            return -1;
        if (outcome == Py_None)
            return 0;
        stored = PyTuple_GET_ITEM(outcome, 0);
        note = PyTuple_GET_ITEM(outcome, 1);
    }
    if (!PyBytes_CheckExact(stored))
        return 0;
    Py_ssize_t size = PyBytes_GET_SIZE(stored);
    if (size < end || size > MAX_DATAGRAM)
        return 0;
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(stored);
    if (rotation) {
        int done = rotate_into(variant, s, size, out);
        if (done <= 0)
            return done;
    } else {
        memcpy(out, s, (size_t)size);
    }
    memcpy(out, query, 2);
    memcpy(out + HEADER, query + HEADER, (size_t)(end - HEADER));
    count_note(notes, distinct, note);
    return size;
}

/* Look ``query`` (from ``addr``) up in ``entries``; the response's length
 * in ``out`` on a hit (its note counted in ``notes``), 0 when the handler
 * must answer it, -1 with an exception set. A query with a COOKIE option is
 * looked up without it (key "u...", AnswerCache._without_cookie) and its
 * response gets this client's cookie in its last octets, as
 * Authority.cookie_patch gives it; one that must get BADCOOKIE goes to the
 * handler untouched (the entry's rotation or draw not moved). */
static Py_ssize_t
lookup(PyObject *entries, const unsigned char *query, Py_ssize_t len,
       const struct sockaddr_storage *addr, const CookieState *cookies, unsigned char *out,
       Counted *notes, int *distinct)
{
    if (len < HEADER)
        return 0;
    const unsigned char *zero = memchr(query + HEADER, 0, (size_t)(len - HEADER));
    Py_ssize_t end = zero ? zero - query : len, cstart = 0, cstop = 0;
    int cookie = cookie_span(query, len, end, &cstart, &cstop);
    if (cookie && cookies->mode == COOKIES_TO_HANDLER)
        return 0;
    unsigned char *key = buffers->key;
    key[0] = cookie ? 'u' : 'U';
    memcpy(key + 1, query + 2, HEADER - 2);
    for (Py_ssize_t i = HEADER; i < end; i++) {
        unsigned char c = query[i];
        key[i - 1] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
    }
    Py_ssize_t klen;
    if (cookie) {
        memcpy(key + end - 1, query + end, (size_t)(cstart - end));
        memcpy(key + cstart - 1, query + cstop, (size_t)(len - cstop));
        klen = len - 1 - (cstop - cstart);
    } else {
        memcpy(key + end - 1, query + end, (size_t)(len - end));
        klen = len - 1;
    }
    PyObject *k = PyBytes_FromStringAndSize((const char *)key, klen);
    if (k == NULL)
        return -1;
    PyObject *found = PyDict_GetItemWithError(entries, k);  /* borrowed */
    Py_DECREF(k);
    if (found == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_CheckExact(found))
        return 0;  /* kept per client address: the handler looks it up */
    unsigned char reply[REPLY_BYTES];
    if (cookie && cookies->mode == COOKIES_ON) {
        unsigned char ip[16];
        Py_ssize_t iplen = client_ip(addr, ip);
        int valid = cookie_reply(cookies, query + cstart + 4, cstop - cstart - 4, ip, iplen,
                                 reply);
        if (valid < 0)
            return -1;
        if (!valid && cookies->require)
            return 0;  /* BADCOOKIE (RFC 7873 section 5.2.3): the handler answers it */
    }
    Py_INCREF(found);  /* a draw calls Python: hold the entry for as long as it is read */
    Py_ssize_t size = patch_hit(found, query, end, out, notes, distinct);
    Py_DECREF(found);
    if (size >= REPLY_BYTES && cookie && cookies->mode == COOKIES_ON)
        memcpy(out + size - REPLY_BYTES, reply, REPLY_BYTES);  /* the COOKIE option is last */
    return size;
}

/* The handler's response to datagram i, copied into its send buffer:
 * its length, 0 for none, -1 with an exception set. */
static Py_ssize_t
handle(PyObject *handler, int i, Py_ssize_t len)
{
    PyObject *data = PyBytes_FromStringAndSize((const char *)buffers->rx[i], len);
    if (data == NULL)
        return -1;
    PyObject *who = address_text(&buffers->addr[i], buffers->rx_msg[i].msg_hdr.msg_namelen);
    if (who == NULL) {
        Py_DECREF(data);
        return -1;
    }
    PyObject *response = PyObject_CallFunctionObjArgs(handler, data, who, Py_True, NULL);
    Py_DECREF(data);
    Py_DECREF(who);
    if (response == NULL)
        return -1;
    Py_ssize_t size = 0;
    if (PyBytes_Check(response) && PyBytes_GET_SIZE(response) <= MAX_DATAGRAM) {
        size = PyBytes_GET_SIZE(response);
        memcpy(buffers->tx[i], PyBytes_AS_STRING(response), (size_t)size);
    }
    Py_DECREF(response);
    return size;
}

static PyObject *
serve(PyObject *Py_UNUSED(module), PyObject *args)
{
    int fd, batch;
    PyObject *entries, *handler, *cookie_arg = Py_None;
    if (!PyArg_ParseTuple(args, "iO!Oi|O:serve", &fd, &PyDict_Type, &entries, &handler, &batch,
                          &cookie_arg))
        return NULL;
    CookieState cookies = {COOKIES_TO_HANDLER, 0, 0, NULL, NULL};
    if (PyTuple_CheckExact(cookie_arg) && PyTuple_GET_SIZE(cookie_arg) == 0) {
        cookies.mode = COOKIES_OFF;
    } else if (cookie_arg != Py_None) {
        PyObject *secrets;
        if (!PyArg_ParseTuple(cookie_arg, "LpO!O:cookies", &cookies.at, &cookies.require,
                              &PyTuple_Type, &secrets, &cookies.siphash))
            return NULL;
        if (PyTuple_GET_SIZE(secrets) < 1) {
            PyErr_SetString(PyExc_ValueError, "cookies: no secret");
            return NULL;
        }
        cookies.secrets = secrets;
        cookies.mode = COOKIES_ON;
    }
    if (buffers == NULL) {
        buffers = PyMem_RawCalloc(1, sizeof *buffers);
        if (buffers == NULL)
            return PyErr_NoMemory();
    }
    if (batch < 1 || batch > MAX_BATCH)
        batch = MAX_BATCH;
    double start = now_s(), in_handler = 0.0;
    for (int i = 0; i < batch; i++) {
        buffers->rx_iov[i].iov_base = buffers->rx[i];
        buffers->rx_iov[i].iov_len = MAX_DATAGRAM;
        memset(&buffers->rx_msg[i].msg_hdr, 0, sizeof(struct msghdr));
        buffers->rx_msg[i].msg_hdr.msg_iov = &buffers->rx_iov[i];
        buffers->rx_msg[i].msg_hdr.msg_iovlen = 1;
        buffers->rx_msg[i].msg_hdr.msg_name = &buffers->addr[i];
        buffers->rx_msg[i].msg_hdr.msg_namelen = sizeof buffers->addr[i];
    }
    int received = recvmmsg(fd, buffers->rx_msg, (unsigned int)batch, MSG_DONTWAIT, NULL);
    if (received < 0)  /* nothing waiting, or an ICMP error surfacing: as the Python path */
        return Py_BuildValue("(iin[]d)", 0, 0, (Py_ssize_t)0, 0.0);
    Counted notes[MAX_BATCH];
    int distinct = 0, out = 0, hits = 0;
    PyObject *failed = NULL, *failed_value = NULL, *failed_tb = NULL;
    for (int i = 0; i < received; i++) {
        Py_ssize_t len = (Py_ssize_t)buffers->rx_msg[i].msg_len, size;
        if (buffers->rx_msg[i].msg_hdr.msg_flags & MSG_TRUNC)
            continue;  /* larger than any DNS message over UDP: dropped */
        size = lookup(entries, buffers->rx[i], len, &buffers->addr[i], &cookies, buffers->tx[i],
                      notes, &distinct);
        if (size < 0) {
            /* the lookup failed (a draw's source raised, say): the handler answers the
             * query on the Python path, which meets the same failure there and
             * answers SERVFAIL (Answering.handle), never silence */
            PyErr_Clear();
            size = 0;
        }
        if (size > 0) {
            hits++;
        } else if (size == 0) {
            double before = now_s();
            size = handle(handler, i, len);
            in_handler += now_s() - before;
        }
        if (size < 0) {
            PyErr_Fetch(&failed, &failed_value, &failed_tb);
            break;  /* what was answered still goes out */
        }
        if (size == 0)
            continue;
        buffers->tx_iov[out].iov_base = buffers->tx[i];
        buffers->tx_iov[out].iov_len = (size_t)size;
        memset(&buffers->tx_msg[out].msg_hdr, 0, sizeof(struct msghdr));
        buffers->tx_msg[out].msg_hdr.msg_iov = &buffers->tx_iov[out];
        buffers->tx_msg[out].msg_hdr.msg_iovlen = 1;
        buffers->tx_msg[out].msg_hdr.msg_name = &buffers->addr[i];
        buffers->tx_msg[out].msg_hdr.msg_namelen = buffers->rx_msg[i].msg_hdr.msg_namelen;
        out++;
    }
    for (int done = 0; done < out;) {
        int sent = sendmmsg(fd, buffers->tx_msg + done, (unsigned int)(out - done), MSG_DONTWAIT);
        done += sent > 0 ? sent : 1;  /* an error: that response dropped, the rest still go */
    }
    PyObject *counted = PyList_New(distinct);
    for (int j = 0; j < distinct; j++) {
        if (counted != NULL)
            PyList_SET_ITEM(counted, j, Py_BuildValue("(On)", notes[j].note, notes[j].count));
        Py_DECREF(notes[j].note);
    }
    if (failed != NULL) {
        Py_XDECREF(counted);
        PyErr_Restore(failed, failed_value, failed_tb);
        return NULL;
    }
    if (counted == NULL)
        return NULL;
    double spent = now_s() - start - in_handler;
    return Py_BuildValue("(iiNd)", received, hits, counted, spent);
}

PyDoc_STRVAR(serve_doc,
"serve(fd, entries, handler, batch, cookies=None) -> (received, hits, notes, seconds)\n\n"
"Read up to ``batch`` (at most 64) datagrams from the non-blocking UDP\n"
"socket ``fd`` with one recvmmsg, answer those found in ``entries`` (an\n"
"AnswerCache's table: shape key -> (response, note, variant), variant\n"
"None, a Rotation, moved here, or a Draw, drawn here) here and the\n"
"rest with ``handler(data, who, True)`` (bytes or None), in order, and\n"
"send every response with sendmmsg (one refused by the kernel is dropped).\n"
"Returns the datagrams read, the hits answered here, a list of\n"
"(note, count) for the hits, and the seconds spent outside ``handler``.\n"
"``cookies``: how a query with a COOKIE option is answered: None, by the\n"
"handler; (), cookies are off (the stored response as it is); or\n"
"(now, require, secrets, siphash) (epoch seconds, Cookies.require, the\n"
"secrets current first, siphashc.siphash): here, with this client's\n"
"cookie, as Authority.cookie_patch makes it (BADCOOKIE: the handler).\n"
"An exception from ``handler`` propagates once what was answered is sent.");

static PyMethodDef methods[] = {
    {"serve", serve, METH_VARARGS, serve_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "gslb.dns._packets",
    "The batched UDP packet path: recvmmsg, answer-cache hits, sendmmsg.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__packets(void)
{
    if ((s_start = PyUnicode_InternFromString("start")) == NULL
            || (s_size = PyUnicode_InternFromString("size")) == NULL
            || (s_count = PyUnicode_InternFromString("count")) == NULL
            || (s_shuffle = PyUnicode_InternFromString("shuffle")) == NULL
            || (s_turn = PyUnicode_InternFromString("turn")) == NULL
            || (s_bits = PyUnicode_InternFromString("bits")) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "MAX_BATCH", MAX_BATCH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
