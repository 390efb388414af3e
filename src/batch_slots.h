/*
 * batch_slots.h
 *		Running batches in shared memory (batch_slots.c): the envelope slots
 *		that make a source's max_concurrency hold across all backends, and
 *		each batch's progress (dci_batch_progress).
 */
#ifndef DCI_BATCH_SLOTS_H
#define DCI_BATCH_SLOTS_H

#include "postgres.h"

typedef struct DciBatchEntry DciBatchEntry;

/* shared memory, from dci_client.c's hooks */
extern void dci_batch_slots_shmem_request(void);
extern void dci_batch_slots_shmem_startup(void);

/*
 * A batch of total items against a source starts: its progress row.  NULL
 * when every entry is taken (the batch then runs with per-backend limits).
 */
extern DciBatchEntry *dci_batch_begin(Oid relid, int32 source_id, int total);

/*
 * One envelope slot of the source, whose envelopes in flight across the
 * cluster (per backend without preloading) stay within cap.  With wait,
 * sleeps (interruptibly, wait event Extension) until one is free; without,
 * false when none is, or when another batch is waiting for one.
 */
extern bool dci_batch_slot_acquire(DciBatchEntry *e, int cap, bool wait);
/* an envelope ended: its slot is free */
extern void dci_batch_slot_release(DciBatchEntry *e);
/* items answered (succ, rjct) and failed (error) so far */
extern void dci_batch_set_progress(DciBatchEntry *e, int answered, int failed);
/* the batch ended (also on error): its slots are free, its row gone */
extern void dci_batch_end(DciBatchEntry *e);

#endif /* DCI_BATCH_SLOTS_H */
