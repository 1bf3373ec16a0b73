/*
 * The DMA table as an AVL tree of non-overlapping ranges keyed by iova:
 * map, unmap and lookup in O(log n) whatever the number of mappings (a
 * vIOMMU guest maps and unmaps all the time). A region's address stays put
 * while it is mapped.
 */
#include "server/dev_internal.h"

#include <errno.h>
#include <stdlib.h>

struct dma_node {
    struct ufio_dma_region r;
    struct dma_node *left, *right;
    int height;
};

static int height(const struct dma_node *n) { return n ? n->height : 0; }

static void fix(struct dma_node *n)
{
    int l = height(n->left), r = height(n->right);
    n->height = (l > r ? l : r) + 1;
}

static struct dma_node *rot_right(struct dma_node *n)
{
    struct dma_node *l = n->left;
    n->left = l->right;
    l->right = n;
    fix(n);
    fix(l);
    return l;
}

static struct dma_node *rot_left(struct dma_node *n)
{
    struct dma_node *r = n->right;
    n->right = r->left;
    r->left = n;
    fix(n);
    fix(r);
    return r;
}

static struct dma_node *balance(struct dma_node *n)
{
    fix(n);
    int b = height(n->left) - height(n->right);
    if (b > 1) {
        if (height(n->left->left) < height(n->left->right))
            n->left = rot_left(n->left);
        return rot_right(n);
    }
    if (b < -1) {
        if (height(n->right->right) < height(n->right->left))
            n->right = rot_right(n->right);
        return rot_left(n);
    }
    return n;
}

struct ufio_dma_region *dma_tree_lower_bound(const struct ufio_dma_table *t, uint64_t iova)
{
    /* ranges do not overlap, so ordering by start orders the ends too */
    struct dma_node *n = t->root, *best = NULL;
    while (n) {
        if (n->r.iova + n->r.size <= iova) {
            n = n->right;
        } else {
            best = n;
            n = n->left;
        }
    }
    return best ? &best->r : NULL;
}

static struct dma_node *insert(struct dma_node *n, struct dma_node *x)
{
    if (!n)
        return x;
    if (x->r.iova < n->r.iova)
        n->left = insert(n->left, x);
    else
        n->right = insert(n->right, x);
    return balance(n);
}

int dma_tree_insert(struct ufio_dma_table *t, const struct ufio_dma_region *r)
{
    struct dma_node *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->r = *r;
    x->height = 1;
    t->root = insert(t->root, x);
    t->n++;
    return 0;
}

static struct dma_node *take_min(struct dma_node *n, struct dma_node **min)
{
    if (!n->left) {
        *min = n;
        return n->right;
    }
    n->left = take_min(n->left, min);
    return balance(n);
}

static struct dma_node *remove_at(struct dma_node *n, uint64_t iova, struct dma_node **gone)
{
    if (!n)
        return NULL;
    if (iova < n->r.iova) {
        n->left = remove_at(n->left, iova, gone);
    } else if (iova > n->r.iova) {
        n->right = remove_at(n->right, iova, gone);
    } else {
        *gone = n;
        if (!n->left || !n->right)
            return n->left ? n->left : n->right;
        struct dma_node *min;
        struct dma_node *right = take_min(n->right, &min);
        min->left = n->left;
        min->right = right;
        return balance(min);
    }
    return balance(n);
}

void dma_tree_remove(struct ufio_dma_table *t, struct ufio_dma_region *r)
{
    struct dma_node *gone = NULL;
    t->root = remove_at(t->root, r->iova, &gone);
    if (gone) {
        free(gone);
        t->n--;
    }
}

static bool walk(struct dma_node *n, uint64_t from, uint64_t to, bool (*fn)(struct ufio_dma_region *, void *),
                 void *opaque)
{
    if (!n)
        return true;
    uint64_t end = n->r.iova + n->r.size;
    if (end > from && !walk(n->left, from, to, fn, opaque))
        return false;
    if (n->r.iova < to && end > from && !fn(&n->r, opaque))
        return false;
    if (n->r.iova < to)
        return walk(n->right, from, to, fn, opaque);
    return true;
}

void dma_tree_walk(const struct ufio_dma_table *t, uint64_t from, uint64_t to,
                   bool (*fn)(struct ufio_dma_region *r, void *opaque), void *opaque)
{
    walk(t->root, from, to, fn, opaque);
}

static void clear(struct dma_node *n, void (*fn)(struct ufio_dma_region *, void *), void *opaque)
{
    if (!n)
        return;
    clear(n->left, fn, opaque);
    clear(n->right, fn, opaque);
    fn(&n->r, opaque);
    free(n);
}

void dma_tree_clear(struct ufio_dma_table *t, void (*fn)(struct ufio_dma_region *r, void *opaque), void *opaque)
{
    clear(t->root, fn, opaque);
    t->root = NULL;
    t->n = 0;
}

int dma_tree_height(const struct ufio_dma_table *t) { return height(t->root); }
