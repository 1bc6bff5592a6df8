/*
 * zt_strategy: a zmqtrade strategy written in C from the documentation alone (README: wire
 * protocol, order framing, the shared-memory book, external strategies). It shares no code with
 * the stack: libzmq and msgpack-c, both from Debian (libzmq3-dev, libmsgpack-dev).
 *
 *     zt_strategy RUN_DIR NAME SYMBOL ORDERS
 *
 * It joins a running stack as the external strategy NAME (declared `external: true` in the
 * topology), reads the endpoints and the book's name from RUN_DIR/stack.json, and then:
 *   1. maps the book (/dev/shm/<book>) and finds SYMBOL's slot in its symbol table;
 *   2. subscribes to the doorbell and the news, each counted only after its WELCOME;
 *   3. asks the order manager for its positions (POSITIONS_ASK) and numbers its orders from
 *      the answer's ts_ns;
 *   4. once a NEWS for SYMBOL has come (it trades only with a sentiment in hand), on each doorbell
 *      that names SYMBOL's slot, reads the slot under its seqlock and sends one ORDER (buying at
 *      the ask and selling at the bid in turn, 1 share), until ORDERS are sent; an order
 *      unanswered for 0.5 s is sent again with the same clordid;
 *   5. prints one line, `sent N filled F rejected R news K sentiment S position P first_clordid C`
 *      (its position as the order manager's POSITIONS answer gave it, plus its own fills), and exits
 *      0 once every order is answered (1 on a protocol error or after 30 s).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define VERSION 1
enum { WELCOME = 0, NEWS = 2, DOORBELL = 3, ORDER = 4, REPLY = 5, EOS = 6, REPLIES = 9,
       POSITIONS_ASK = 10, POSITIONS = 11 };
#define BOOK_MAGIC 0x5A4D51424F4F4B31ULL
#define MAX_ORDERS 100000
#define RESEND_NS 500000000LL
#define GIVE_UP_NS 30000000000LL

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t); /* the stack clock on one host */
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "zt_strategy: %s\n", what);
    exit(1);
}

/* ------------------------------------------------------------------ stack.json */
/* The value of "key": "value" inside the "endpoints" object (or at top level for "book"). */
static char *json_string(const char *doc, const char *section, const char *key) {
    const char *from = doc;
    if (section) {
        char s[64];
        snprintf(s, sizeof s, "\"%s\":", section);
        from = strstr(doc, s);
        if (!from) return NULL;
    }
    char k[128];
    snprintf(k, sizeof k, "\"%s\": \"", key);
    const char *p = strstr(from, k);
    if (!p) return NULL;
    p += strlen(k);
    const char *end = strchr(p, '"');
    return end ? strndup(p, (size_t)(end - p)) : NULL;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strdup(buf);
}

/* ------------------------------------------------------------------ the book */
typedef struct { double bid, ask, last; uint64_t size, tick_seq, tick_ts, write_ts; } quote_t;

/* SYMBOL's slot in the book and, in *index, its number (what doorbells name). */
static const volatile uint64_t *book_slot(const char *book, const char *symbol, long *index) {
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/%s", book);
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("cannot open the book (is the stack running, on this host?)");
    struct stat st;
    fstat(fd, &st);
    const uint8_t *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) die("cannot map the book");
    const uint64_t *h = (const uint64_t *)base;
    if (h[0] != BOOK_MAGIC || h[1] != 1 || h[3] != 8) die("not a zmqtrade book of layout 1");
    uint64_t n = h[2];
    size_t slots = 64 + ((16 * n + 63) / 64) * 64; /* header, then the symbol table padded to 64 */
    for (uint64_t i = 0; i < n; i++) {
        char name[17] = {0};
        memcpy(name, base + 64 + 16 * i, 16); /* NUL-padded ASCII */
        if (strcmp(name, symbol) == 0) {
            *index = (long)i;
            return (const volatile uint64_t *)(base + slots + 64 * i);
        }
    }
    die("the book has no such symbol");
    return NULL;
}

/* Seqlock read; 0 if the slot was never written. */
static int read_quote(const volatile uint64_t *w, quote_t *q) {
    uint64_t s1, s2, f[7];
    do {
        s1 = __atomic_load_n(&w[0], __ATOMIC_ACQUIRE);
        if (s1 & 1) continue;
        for (int k = 0; k < 7; k++) f[k] = w[1 + k];
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = __atomic_load_n(&w[0], __ATOMIC_RELAXED);
    } while ((s1 & 1) || s1 != s2);
    if (s1 == 0) return 0;
    memcpy(&q->bid, &f[0], 8); memcpy(&q->ask, &f[1], 8); memcpy(&q->last, &f[2], 8);
    q->size = f[3]; q->tick_seq = f[4]; q->tick_ts = f[5]; q->write_ts = f[6];
    return 1;
}

/* ------------------------------------------------------------------ msgpack */
static int64_t as_int(const msgpack_object *o) {
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)o->via.u64 : o->via.i64;
}

static int is_int(const msgpack_object *o) {
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

static int str_is(const msgpack_object *o, const char *s) {
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) && !memcmp(o->via.str.ptr, s, o->via.str.size);
}

static void pack_str(msgpack_packer *pk, const char *s) {
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* A body's array, checked to be [kind, 1, ...]; its kind, or -1. */
static int unpack(msgpack_unpacked *u, const void *data, size_t size, msgpack_object_array **out) {
    size_t off = 0;
    if (msgpack_unpack_next(u, data, size, &off) != MSGPACK_UNPACK_SUCCESS) return -1;
    msgpack_object *o = &u->data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2) return -1;
    msgpack_object_array *a = &o->via.array;
    if (!is_int(&a->ptr[0]) || !is_int(&a->ptr[1]) || as_int(&a->ptr[1]) != VERSION) return -1;
    *out = a;
    return (int)as_int(&a->ptr[0]);
}

static int recv_body(void *sock, zmq_msg_t *m) {
    zmq_msg_init(m);
    return zmq_msg_recv(m, sock, ZMQ_DONTWAIT);
}

/* ------------------------------------------------------------------ orders */
typedef struct { int64_t clordid, sent_ns, tick_ts, book_ts, decide_ts; int buy; double price; int answered; } order_t;

static void send_order(void *dealer, const char *name, const char *symbol, order_t *o) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    o->sent_ns = now_ns();
    msgpack_pack_array(&pk, 12);
    msgpack_pack_int(&pk, ORDER);
    msgpack_pack_int(&pk, VERSION);
    msgpack_pack_int64(&pk, o->clordid);
    pack_str(&pk, name);
    pack_str(&pk, symbol);
    pack_str(&pk, o->buy ? "BUY" : "SELL");
    msgpack_pack_int64(&pk, 1);
    msgpack_pack_double(&pk, o->price);
    msgpack_pack_int64(&pk, o->tick_ts);
    msgpack_pack_int64(&pk, o->book_ts);
    msgpack_pack_int64(&pk, o->decide_ts); /* a re-send keeps it: the duplicate filter ages by it */
    msgpack_pack_int64(&pk, o->sent_ns);
    zmq_send(dealer, sb.data, sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

static void *subscriber(void *ctx, const char *endpoint) {
    void *s = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0); /* everything: the WELCOME matches it */
    if (zmq_connect(s, endpoint) != 0) die("cannot connect a subscriber");
    return s;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: zt_strategy RUN_DIR NAME SYMBOL ORDERS\n");
        return 2;
    }
    const char *run_dir = argv[1], *name = argv[2], *symbol = argv[3];
    long total = strtol(argv[4], NULL, 10);
    if (total < 1 || total > MAX_ORDERS) die("ORDERS must be 1..100000");

    char path[4096];
    snprintf(path, sizeof path, "%s/stack.json", run_dir);
    char *stack = read_file(path);
    if (!stack) die("cannot read RUN_DIR/stack.json (written once the stack is ready)");
    char *book = json_string(stack, NULL, "book");
    char *ep_orders = json_string(stack, "endpoints", "ordermanager.endpoint");
    char *ep_bell = json_string(stack, "endpoints", "orderbook.doorbell");
    char *ep_news = json_string(stack, "endpoints", "gateway.news");
    if (!book || !ep_orders || !ep_bell || !ep_news) die("stack.json lacks the book or an endpoint");
    long my_slot = -1;
    const volatile uint64_t *slot = book_slot(book, symbol, &my_slot);

    void *ctx = zmq_ctx_new();
    void *bell = subscriber(ctx, ep_bell), *news = subscriber(ctx, ep_news);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER); /* no routing id: the ROUTER names the connection */
    int linger = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(dealer, ep_orders) != 0) die("cannot connect to the order manager");

    static order_t orders[MAX_ORDERS];
    long sent = 0, filled = 0, rejected = 0, news_seen = 0, answered = 0;
    int64_t next_clordid = -1, first_clordid = -1, position = 0, ask_due = 0, sentiment = -1;
    int welcomed_bell = 0, welcomed_news = 0, bell_over = 0;
    int64_t give_up = now_ns() + GIVE_UP_NS;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);

    while (answered < total || sent < total) {
        int64_t now = now_ns();
        if (now > give_up) die("gave up after 30 s");
        if (next_clordid < 0 && now >= ask_due) { /* ask (again) until the order manager answers */
            msgpack_sbuffer sb;
            msgpack_packer pk;
            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_array(&pk, 4);
            msgpack_pack_int(&pk, POSITIONS_ASK);
            msgpack_pack_int(&pk, VERSION);
            pack_str(&pk, name);
            msgpack_pack_int64(&pk, now);
            zmq_send(dealer, sb.data, sb.size, ZMQ_DONTWAIT);
            msgpack_sbuffer_destroy(&sb);
            ask_due = now + RESEND_NS;
        }
        for (long i = 0; i < sent; i++) /* at least once; the duplicate filter makes it once */
            if (!orders[i].answered && now - orders[i].sent_ns > RESEND_NS) send_order(dealer, name, symbol, &orders[i]);
        if (bell_over && sent < total) die("the doorbell ended before every order was sent");

        zmq_pollitem_t items[] = {{bell, 0, ZMQ_POLLIN, 0}, {news, 0, ZMQ_POLLIN, 0}, {dealer, 0, ZMQ_POLLIN, 0}};
        zmq_poll(items, 3, 100);
        zmq_msg_t m;
        msgpack_object_array *a;
        while (items[0].revents && recv_body(bell, &m) >= 0) {
            int kind = unpack(&u, zmq_msg_data(&m), zmq_msg_size(&m), &a);
            if (kind == WELCOME) welcomed_bell = 1;
            else if (kind == EOS) bell_over = 1;
            else if (kind == DOORBELL && welcomed_bell && next_clordid >= 0 && sentiment >= 0 && sent < total
                     && a->size == 5 && a->ptr[3].type == MSGPACK_OBJECT_ARRAY) {
                msgpack_object_array *slots = &a->ptr[3].via.array;
                for (uint32_t k = 0; k < slots->size; k++) {
                    quote_t q;
                    if (as_int(&slots->ptr[k]) != my_slot || !read_quote(slot, &q) || sent >= total) continue;
                    order_t *o = &orders[sent];
                    o->clordid = next_clordid++;
                    o->buy = (sent % 2) == 0;
                    o->price = o->buy ? q.ask : q.bid;
                    o->tick_ts = (int64_t)q.tick_ts;
                    o->book_ts = (int64_t)q.write_ts;
                    o->decide_ts = now_ns();
                    send_order(dealer, name, symbol, o);
                    sent++;
                    break; /* one order per doorbell */
                }
            }
            zmq_msg_close(&m);
        }
        while (items[1].revents && recv_body(news, &m) >= 0) {
            int kind = unpack(&u, zmq_msg_data(&m), zmq_msg_size(&m), &a);
            if (kind == WELCOME) welcomed_news = 1;
            else if (kind == NEWS && welcomed_news && a->size == 6) {
                news_seen++;
                if (str_is(&a->ptr[3], symbol)) sentiment = as_int(&a->ptr[4]);
            }
            zmq_msg_close(&m);
        }
        while (items[2].revents && recv_body(dealer, &m) >= 0) {
            int kind = unpack(&u, zmq_msg_data(&m), zmq_msg_size(&m), &a);
            if (kind == POSITIONS && a->size == 6 && str_is(&a->ptr[2], name) && next_clordid < 0) {
                if (!str_is(&a->ptr[3], "ok")) die("the order manager refused the positions ask");
                msgpack_object_array *held = &a->ptr[4].via.array;
                for (uint32_t k = 0; k < held->size; k++) {
                    msgpack_object_array *h = &held->ptr[k].via.array;
                    if (str_is(&h->ptr[0], symbol)) position = as_int(&h->ptr[1]);
                }
                first_clordid = next_clordid = as_int(&a->ptr[5]); /* ids count up from its clock */
            } else if (kind == REPLY || kind == REPLIES) {
                /* a REPLY's fields follow kind and version; a REPLIES holds an array of such field arrays */
                msgpack_object_array one = {a->size - 2, a->ptr + 2}, *f = &one;
                uint32_t n = kind == REPLY ? 1 : a->ptr[2].via.array.size;
                for (uint32_t k = 0; k < n; k++) {
                    if (kind == REPLIES) f = &a->ptr[2].via.array.ptr[k].via.array;
                    if (f->size != 6 || !is_int(&f->ptr[0])) die("a malformed reply");
                    int64_t cid = as_int(&f->ptr[0]);
                    long i = (long)(cid - first_clordid);
                    if (i < 0 || i >= sent || orders[i].answered) continue; /* a re-send's second answer */
                    orders[i].answered = 1;
                    answered++;
                    if (str_is(&f->ptr[1], "filled")) {
                        filled++;
                        position += orders[i].buy ? 1 : -1;
                    } else {
                        rejected++;
                        fprintf(stderr, "order %" PRId64 " rejected: %.*s\n", cid, (int)f->ptr[3].via.str.size,
                                f->ptr[3].via.str.ptr);
                    }
                }
            } else if (kind < 0) {
                die("a malformed message on the order socket");
            }
            zmq_msg_close(&m);
        }
    }
    printf("sent %ld filled %ld rejected %ld news %ld sentiment %" PRId64 " position %" PRId64 " first_clordid %" PRId64
           "\n", sent, filled, rejected, news_seen, sentiment, position, first_clordid);
    msgpack_unpacked_destroy(&u);
    zmq_close(bell);
    zmq_close(news);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
    return 0;
}
