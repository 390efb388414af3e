/*
 * inbound.h
 *		The inbound half of DCI (inbound.c): dci_receive checks and stores
 *		callbacks and notifications, dci_await waits for a transaction.
 *		SQL functions only; no C interface.
 */
#ifndef DCI_INBOUND_H
#define DCI_INBOUND_H

/* the channel every accepted message is announced on */
#define DCI_NOTIFY_CHANNEL "dci_client"

#endif /* DCI_INBOUND_H */
