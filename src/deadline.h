/*
 * deadline.h
 *		Time budgets of calls: one deadline covers a whole call.
 */
#ifndef DCI_DEADLINE_H
#define DCI_DEADLINE_H

#include "postgres.h"
#include "settings.h"
#include "source.h"
#include "utils/timestamp.h"

/* milliseconds left until deadline (never negative) */
static inline long
dci_ms_until(TimestampTz deadline)
{
	TimestampTz now = GetCurrentTimestamp();

	if (now >= deadline)
		return 0;
	return (long) ((deadline - now + 999) / 1000);
}

/* the deadline of a call of src (NULL: none) that starts now */
static inline TimestampTz
dci_call_deadline(const DciSource *src)
{
	int ms = (src && src->timeout_ms > 0) ? src->timeout_ms : dci_timeout_ms;

	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
}

#endif /* DCI_DEADLINE_H */
