/*
 * redaction.c
 *		The credentials of a data source that must never be handed back, and
 *		their redaction from registry text (redact.c does the matching).
 *
 * A registry that echoes its request (many test and some real ones do)
 * would otherwise return our bearer token in dci_request's body, our client
 * secret in a token error, or base64(client_id:client_secret) from the Basic
 * header.  Needles: client_secret, bearer_token, client_key, the session's
 * current access token, and the two Basic spellings (raw and form-encoded
 * parts, as RFC 6749 §2.3.1 sends them).
 */
#include "dci_client.h"

#include "common/base64.h"
#include "utils/memutils.h"

#include "redact.h"
#include "redaction.h"

#define MAX_NEEDLES 12

/* the needles of the last source asked for, kept until it is reloaded */
static uint64 needles_serial = 0;
static MemoryContext needles_cxt = NULL;
static RedactNeedle needles[MAX_NEEDLES];
static int	nneedles = 0;			/* fixed part: without the token */

char *
dci_base64(const char *s)
{
	int			len = strlen(s);
	int			enc_len = pg_b64_enc_len(len);
	char	   *out = palloc(enc_len + 1);
	int			n = pg_b64_encode(s, len, out, enc_len);

	out[n < 0 ? 0 : n] = '\0';
	return out;
}

static void
add_needle(const char *s)
{
	if (s != NULL && strlen(s) >= REDACT_MIN_LEN && nneedles < MAX_NEEDLES - 2)
	{
		needles[nneedles].s = s;
		needles[nneedles].len = strlen(s);
		nneedles++;
	}
}

/* the source's fixed needles; the token (and its base64) change more often: added per call */
static void
load_needles(const DciSource *src)
{
	MemoryContext old;

	if (needles_cxt != NULL && needles_serial == src->serial)
		return;
	if (needles_cxt == NULL)
		needles_cxt = AllocSetContextCreate(TopMemoryContext, "dci_client redaction",
											ALLOCSET_SMALL_SIZES);
	/* the copies below are credentials: wipe before reuse */
	for (int i = 0; i < nneedles; i++)
		explicit_bzero((char *) needles[i].s, needles[i].len);
	MemoryContextReset(needles_cxt);
	nneedles = 0;
	needles_serial = src->serial;

	old = MemoryContextSwitchTo(needles_cxt);
	add_needle(src->client_secret ? pstrdup(src->client_secret) : NULL);
	add_needle(src->client_secret ? dci_base64(src->client_secret) : NULL);
	add_needle(src->bearer_token ? pstrdup(src->bearer_token) : NULL);
	add_needle(src->bearer_token ? dci_base64(src->bearer_token) : NULL);
	add_needle(src->client_key ? pstrdup(src->client_key) : NULL);
	if (src->client_id && src->client_secret)
	{
		char	   *raw = psprintf("%s:%s", src->client_id, src->client_secret);
		char	   *id_enc = dci_url_encode(src->client_id);
		char	   *secret_enc = dci_url_encode(src->client_secret);
		char	   *encoded = psprintf("%s:%s", id_enc, secret_enc);

		add_needle(dci_base64(raw));
		add_needle(dci_base64(encoded));
		dci_secret_free(raw);
		dci_secret_free(encoded);
		dci_secret_free(id_enc);
		dci_secret_free(secret_enc);
	}
	MemoryContextSwitchTo(old);
}

char *
dci_redact(const DciSource *src, char *text, size_t len, size_t *outlen)
{
	const char *token;
	int			n;
	char	   *out = NULL;
	size_t		out_len = 0;
	int			rc;
	char	   *result;
	char	   *token_b64 = NULL;

	*outlen = len;
	if (src == NULL || text == NULL)
		return text;
	load_needles(src);
	n = nneedles;
	token = src->access_token;
	if (token != NULL && strlen(token) >= REDACT_MIN_LEN)
	{
		needles[n].s = token;
		needles[n].len = strlen(token);
		n++;
		token_b64 = dci_base64(token);
		needles[n].s = token_b64;
		needles[n].len = strlen(token_b64);
		n++;
	}
	if (n == 0)
		return text;
	rc = redact_text(needles, n, text, len, &out, &out_len);
	if (token_b64)
		dci_secret_free(token_b64);
	if (rc == 0)
		return text;
	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while redacting an answer of data source \"%s\"", src->code)));
	result = palloc(out_len + 1);
	memcpy(result, out, out_len);
	result[out_len] = '\0';
	free(out);
	*outlen = out_len;
	return result;
}

char *
dci_quote_registry_text(const DciSource *src, const char *text, size_t len)
{
	char	   *copy = pnstrdup(text, len);
	size_t		copy_len;

	copy = dci_redact(src, copy, strlen(copy), &copy_len);
	return dci_quote_text(copy, copy_len);
}
