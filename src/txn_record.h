/*
 * txn_record.h
 *		dci_transaction rows committed before an asynchronous request goes
 *		out, outside the sender's transaction (txn_record.c).
 */
#ifndef DCI_TXN_RECORD_H
#define DCI_TXN_RECORD_H

#include "source.h"

typedef struct DciTxnRecord DciTxnRecord;

/*
 * Commit the row (state 'sent') of transaction txn, about to be sent to
 * endpoint as message message_id, and return once it is committed.  For a
 * subscription, sub_event/sub_filter (else NULL) also commit a 'requested'
 * dci_subscription row.  Raises (nothing to send then) when the row cannot
 * be written: 22023 for a transaction_id this source used before.
 */
extern DciTxnRecord *dci_txn_record_begin(DciSource *src, const char *txn, const char *action,
										  const char *message_id, const char *endpoint,
										  const char *sub_event, const char *sub_filter);

/*
 * The outcome of the request: acked or not (failed).  The writer moves the
 * row from 'sent' only, so a state a callback already set stays.  Never
 * raises (it runs in error paths too); does not wait: the database's
 * writer (preloaded) or a short worker of its own writes it.
 */
extern void dci_txn_record_end(DciTxnRecord *rec, bool acked);

/* shared memory of the persistent writers, from dci_client.c's hooks (preloaded) */
extern void dci_txn_record_shmem_request(void);
extern void dci_txn_record_shmem_startup(void);

#endif /* DCI_TXN_RECORD_H */
