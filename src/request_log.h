/*
 * request_log.h
 *		The request log, dci_request_log (request_log.c).
 */
#ifndef DCI_REQUEST_LOG_H
#define DCI_REQUEST_LOG_H

#include "source.h"
#include "utils/timestamp.h"

/*
 * One call being recorded.  dci_log_begin() starts it; dci_http_exchange()
 * fills status, bytes and attempts; dci_log_end() or dci_log_failed() (from
 * a PG_CATCH, with the error in flight) writes the record.
 */
extern void dci_log_begin(const DciSource *src, const char *method, const char *path);
extern void dci_log_exchange(long status, size_t bytes, int attempts);
extern void dci_log_end(void);
extern void dci_log_failed(void);
/*
 * For calls that ran before they are recorded (dci_search_batch's
 * envelopes): when the call started; and write a failure noted by
 * dci_log_failed now, for an error that was caught and not rethrown.
 */
extern void dci_log_set_start(TimestampTz start);
extern void dci_log_flush_failed(void);
/* a token was fetched for this source (statistics only) */
extern void dci_log_token_fetch(const DciSource *src);

/* shared memory, from dci_client.c's hooks */
extern void dci_request_log_shmem_request(void);
extern void dci_request_log_shmem_startup(void);

#endif /* DCI_REQUEST_LOG_H */
