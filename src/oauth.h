/*
 * oauth.h
 *		Access tokens: OAuth2 client credentials and the per-session cache
 *		(oauth.c), backed by the shared cache of token_cache.c.
 */
#ifndef DCI_OAUTH_H
#define DCI_OAUTH_H

#include "postgres.h"
#include "errors.h"
#include "source.h"
#include "token_cache.h"

/*
 * The access token of a source (the stored one for bearer, NULL for none),
 * or NULL with err set.  *generation identifies it for dci_token_drop.
 */
extern char *dci_token_get(DciSource *src, int force_refresh, TimestampTz deadline,
						   uint64 *generation, DciError *err);
/*
 * May a 401 renew the token of this generation?  Not while it is younger
 * than dci_client.token_min_interval_ms (superusers aside): a caller that
 * picks paths answering 401 cannot make the extension flood the token
 * endpoint.
 */
extern bool dci_token_renewable(DciSource *src, uint64 generation);
/* forget the token of generation (after a 401), locally and in shared memory */
extern void dci_token_drop(DciSource *src, uint64 generation);

#endif /* DCI_OAUTH_H */
