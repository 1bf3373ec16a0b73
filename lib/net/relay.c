/* The two-thread relay (relay.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/relay.h"

int relay_init(struct relay *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    for (int i = 0; i < RELAY_SLOTS; i++)
        if (!(r->slot[i].buf = malloc(cap))) {
            relay_free(r);
            return -ENOMEM;
        }
    return 0;
}

void relay_free(struct relay *r)
{
    for (int i = 0; i < RELAY_SLOTS; i++) {
        free(r->slot[i].buf);
        r->slot[i].buf = NULL;
    }
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

struct relay_slot *relay_claim(struct relay *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->cancel && r->produced - r->consumed >= RELAY_SLOTS)
        pthread_cond_wait(&r->cv, &r->mu);
    struct relay_slot *s = r->cancel ? NULL : &r->slot[r->produced % RELAY_SLOTS];
    pthread_mutex_unlock(&r->mu);
    return s;
}

void relay_publish(struct relay *r)
{
    pthread_mutex_lock(&r->mu);
    r->produced++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void relay_close(struct relay *r, int err)
{
    pthread_mutex_lock(&r->mu);
    r->closed = true;
    r->err = err;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

struct relay_slot *relay_next(struct relay *r, int *err)
{
    pthread_mutex_lock(&r->mu);
    while (r->consumed == r->produced && !r->closed)
        pthread_cond_wait(&r->cv, &r->mu);
    struct relay_slot *s = r->consumed < r->produced ? &r->slot[r->consumed % RELAY_SLOTS] : NULL;
    *err = s ? 0 : r->err;
    pthread_mutex_unlock(&r->mu);
    return s;
}

void relay_release(struct relay *r)
{
    pthread_mutex_lock(&r->mu);
    r->consumed++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void relay_cancel(struct relay *r)
{
    pthread_mutex_lock(&r->mu);
    r->cancel = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}
