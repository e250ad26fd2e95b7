/* Fuzz target for common/http_parser: arbitrary bytes as requests or responses, fed whole and
 * again in arbitrary pieces; besides memory safety it checks that the pieces never change the
 * outcome (same messages, same fields, same consumed bytes, same error).
 * Input: byte 0 = mode (bit 0 response, bit 1 stop_after_headers, bits 2-3 limits, bit 4 answers
 * to HEAD), byte 1 = seed of the piece sizes, the rest = the bytes on the wire. */
#include "common/http_parser.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct http_parser parser;
static char body[4096];

struct outcome {
    uint64_t hash; /* over every completed message's fields */
    size_t offset; /* bytes consumed in total */
    int messages;
    int result; /* last result: error, MORE, or finish's answer */
};

static uint64_t mix(uint64_t h, const void *data, size_t len)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_msg(uint64_t h, const struct http_msg *m)
{
    int fields[] = {m->method,  m->status,  m->version_major,      m->version_minor, m->keep_alive,
                    m->upgrade, m->chunked, m->has_content_length, m->n_headers};
    h = mix(h, fields, sizeof fields);
    h = mix(h, &m->content_length, sizeof m->content_length);
    h = mix(h, http_msg_path(m), strlen(http_msg_path(m)));
    if (http_msg_query(m))
        h = mix(h, http_msg_query(m), strlen(http_msg_query(m)) + 1);
    for (size_t i = 0; i < m->n_headers; i++) {
        const char *name, *value;
        http_msg_header_at(m, i, &name, &value);
        h = mix(h, name, strlen(name) + 1);
        h = mix(h, value, strlen(value) + 1);
        /* The lookup helpers must be safe on anything the parser stored. */
        (void)http_msg_header(m, name);
        (void)http_msg_header_has_token(m, name, "upgrade");
    }
    h = mix(h, &m->body_len, sizeof m->body_len);
    if (m->body_len)
        h = mix(h, m->body, m->body_len);
    return h;
}

/* Feeds data in pieces drawn from seed (0 = whole) and records what came out. */
static struct outcome run(const uint8_t *data, size_t len, uint8_t mode, unsigned seed)
{
    static const struct http_limits limits[4] = {
        HTTP_LIMITS_DEFAULT,
        {.max_head_bytes = 64, .max_headers = 2, .max_body = 16},
        {.max_head_bytes = 256, .max_headers = 8, .max_body = 0},
        {.max_head_bytes = HTTP_HEAD_BYTES_MAX,
         .max_headers = HTTP_HEADERS_MAX,
         .max_body = sizeof body},
    };
    bool stop = mode & 2;
    http_parser_init(&parser, (mode & 1) ? HTTP_MSG_RESPONSE : HTTP_MSG_REQUEST,
                     &limits[(mode >> 2) & 3], stop);
    http_parser_set_head_response(&parser, mode & 16);
    if (!stop)
        http_parser_set_body_buffer(&parser, body, sizeof body);
    struct outcome o = {.hash = 14695981039346656037ull};
    size_t avail = 0;
    uint32_t rng = seed * 2654435761u + 1;
    for (;;) {
        if (seed == 0) {
            avail = len;
        } else if (avail < len) {
            rng = rng * 1103515245u + 12345u;
            size_t step = 1 + (rng >> 16) % 17;
            avail = avail + step < len ? avail + step : len;
        }
        size_t used;
        int r =
            http_parser_execute(&parser, (const char *)data + o.offset, avail - o.offset, &used);
        if (used > avail - o.offset)
            abort();
        o.offset += used;
        o.result = r;
        if (r < 0)
            return o;
        if (r == HTTP_PARSE_HEADERS) {
            uint64_t cl = parser.msg.content_length;
            http_parser_set_body_buffer(&parser, body, cl && cl < sizeof body ? cl : sizeof body);
            continue;
        }
        if (r == HTTP_PARSE_DONE) {
            o.messages++;
            o.hash = hash_msg(o.hash, &parser.msg);
            if (parser.msg.upgrade)
                return o;
            if (stop)
                http_parser_set_body_buffer(&parser, NULL, 0);
            continue;
        }
        if (o.offset == len)
            break;
    }
    o.result = http_parser_finish(&parser);
    if (o.result == HTTP_PARSE_DONE) {
        o.messages++;
        o.hash = hash_msg(o.hash, &parser.msg);
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    unsigned seed = data[1] ? data[1] : 1;
    struct outcome whole = run(data + 2, size - 2, mode, 0);
    struct outcome split = run(data + 2, size - 2, mode, seed);
    /* Where an error is noticed inside a span depends on the pieces; whether it is, does not. */
    bool offsets_differ = whole.result >= 0 && whole.offset != split.offset;
    if (whole.hash != split.hash || offsets_differ || whole.messages != split.messages ||
        whole.result != split.result) {
        fprintf(stderr, "split changed the outcome: whole %d msgs off %zu r %d, split %d %zu %d\n",
                whole.messages, whole.offset, whole.result, split.messages, split.offset,
                split.result);
        abort();
    }
    return 0;
}
