/*
 * A small bounded relay between two threads: a producer fills slots, a
 * consumer drains them in order, each blocking only while the relay is full
 * or empty. The destination agent uses it to overlap link I/O with device
 * I/O, so the link stays busy while the device is written (on the source the
 * engine's pump does the same).
 */
#ifndef UFIO_NET_RELAY_H
#define UFIO_NET_RELAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RELAY_SLOTS 3

struct relay_slot {
    uint8_t *buf;
    size_t len;
    uint32_t type;      /* for messages: their type */
};

struct relay {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct relay_slot slot[RELAY_SLOTS];
    uint64_t produced, consumed;
    bool closed;        /* the producer is done (see err) */
    bool cancel;        /* the consumer gave up */
    int err;            /* the producer's error, 0 when it ended normally */
};

/* Allocates RELAY_SLOTS buffers of cap bytes. 0 or -ENOMEM. */
int relay_init(struct relay *r, size_t cap);
void relay_free(struct relay *r);
/* Producer: the next free slot, or NULL when the consumer cancelled. */
struct relay_slot *relay_claim(struct relay *r);
void relay_publish(struct relay *r);
void relay_close(struct relay *r, int err);
/* Consumer: the next filled slot, or NULL at the end (then *err says why). */
struct relay_slot *relay_next(struct relay *r, int *err);
void relay_release(struct relay *r);
void relay_cancel(struct relay *r);

#endif
