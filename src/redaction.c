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

#include "miscadmin.h"
#include "utils/memutils.h"

#include "errors.h"
#include "http.h"
#include "base64.h"
#include "redact.h"
#include "redaction.h"
#include "secrets.h"
#include "source.h"

#define MAX_NEEDLES 48
/* the sent signature's needles: its value and its base64 alignments (add_secret) */
#define MAX_SIG_NEEDLES 8

/*
 * The needles of the last source asked for, kept until it is reloaded
 * (fixed part), and of its current access token (kept until it changes).
 */
static uint64		 needles_serial = 0;
static MemoryContext needles_cxt = NULL;
static MemoryContext token_cxt = NULL;
static RedactNeedle	 needles[MAX_NEEDLES + MAX_SIG_NEEDLES];
static int			 nfixed = 0;
static int			 ntoken = 0;
static char			*token_copy = NULL;

/* the signature of the last envelope sent (dci_redact_sent_signature) */
static MemoryContext sig_cxt = NULL;
static RedactNeedle	 sig_needles[MAX_SIG_NEEDLES];
static int			 nsig = 0;

/* where add_needle puts needles: needles[] (limit MAX_NEEDLES) or sig_needles[] */
static RedactNeedle *target = needles;
static int			 target_max = MAX_NEEDLES;

static void
add_needle(int *n, const char *s)
{
	if (s != NULL && strlen(s) >= REDACT_MIN_LEN && *n < target_max)
	{
		target[*n].s = s;
		target[*n].len = strlen(s);
		(*n)++;
	}
}

/*
 * secret, and its base64 wherever it stands in a longer base64 text ("Bearer
 * <token>", "id:secret", ...): at each of the three byte alignments, the
 * characters that depend on the secret's bytes alone, in both alphabets.
 */
static void
add_secret(int *n, const char *secret)
{
	size_t len;

	if (secret == NULL)
		return;
	len = strlen(secret);
	add_needle(n, pstrdup(secret));
	add_needle(n, dci_base64(secret));
	for (size_t k = 0; k < 3 && k < len; k++)
	{
		size_t whole = (len - k) - (len - k) % 3;
		char  *std;

		if (whole < 6)
			continue;
		std = dci_b64_encode((const unsigned char *) secret + k, whole, false);
		if (std == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		add_needle(n, pstrdup(std));
		/* base64url: the same characters but '+' and '/' */
		for (char *c = std; *c; c++)
			*c = (*c == '+') ? '-' : (*c == '/') ? '_'
												 : *c;
		add_needle(n, pstrdup(std));
		explicit_bzero(std, strlen(std));
		free(std);
	}
}

char *
dci_base64(const char *s)
{
	char *enc = dci_b64_encode((const unsigned char *) s, strlen(s), false);
	char *out;

	if (enc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	out = pstrdup(enc);
	explicit_bzero(enc, strlen(enc));
	free(enc);
	return out;
}

/* wipe the copies of credentials from index first on */
static void
wipe_needles(int first, int last)
{
	for (int i = first; i < last; i++)
		explicit_bzero((char *) needles[i].s, needles[i].len);
}

/* the source's fixed needles */
static void
load_needles(const DciSource *src)
{
	MemoryContext old;

	target = needles;
	target_max = MAX_NEEDLES;
	if (needles_cxt != NULL && needles_serial == src->serial)
		return;
	if (needles_cxt == NULL)
	{
		needles_cxt = AllocSetContextCreate(TopMemoryContext, "dci_client redaction",
											ALLOCSET_SMALL_SIZES);
		token_cxt = AllocSetContextCreate(TopMemoryContext, "dci_client redaction token",
										  ALLOCSET_SMALL_SIZES);
	}
	wipe_needles(0, nfixed + ntoken);
	MemoryContextReset(needles_cxt);
	MemoryContextReset(token_cxt);
	nfixed = ntoken = 0;
	token_copy = NULL;
	needles_serial = src->serial;

	old = MemoryContextSwitchTo(needles_cxt);
	add_secret(&nfixed, src->client_secret);
	add_secret(&nfixed, src->bearer_token);
	add_secret(&nfixed, src->callback_token);
	add_needle(&nfixed, src->client_key ? pstrdup(src->client_key) : NULL);
	if (src->client_id && src->client_secret)
	{
		/* Basic credentials as RFC 6749 §2.3.1 sends them: form-encoded parts */
		char *raw = psprintf("%s:%s", src->client_id, src->client_secret);
		char *id_enc = dci_url_encode(src->client_id);
		char *secret_enc = dci_url_encode(src->client_secret);
		char *encoded = psprintf("%s:%s", id_enc, secret_enc);

		add_needle(&nfixed, dci_base64(raw));
		add_needle(&nfixed, dci_base64(encoded));
		if (strcmp(secret_enc, src->client_secret) != 0)
			add_secret(&nfixed, secret_enc);
		dci_secret_free(raw);
		dci_secret_free(encoded);
		dci_secret_free(id_enc);
		dci_secret_free(secret_enc);
	}
	MemoryContextSwitchTo(old);
}

/* the needles of the current token, after the fixed ones */
static void
load_token_needles(const char *token)
{
	MemoryContext old;

	target = needles;
	target_max = MAX_NEEDLES;
	if (token_copy != NULL && token != NULL && strcmp(token_copy, token) == 0)
		return;
	wipe_needles(nfixed, nfixed + ntoken);
	if (token_copy)
		explicit_bzero(token_copy, strlen(token_copy));
	MemoryContextReset(token_cxt);
	ntoken = 0;
	token_copy = NULL;
	if (token == NULL)
		return;
	old = MemoryContextSwitchTo(token_cxt);
	token_copy = pstrdup(token);
	ntoken = nfixed;
	add_secret(&ntoken, token);
	ntoken -= nfixed;
	MemoryContextSwitchTo(old);
}

void
dci_redact_sent_signature(const char *envelope, size_t len)
{
	static const char key[] = ",\"signature\":\"";
	const char *start = NULL;
	const char *end;
	const char *v;
	MemoryContext old;

	if (sig_cxt == NULL)
		sig_cxt = AllocSetContextCreate(TopMemoryContext, "dci_client redaction signature",
										ALLOCSET_SMALL_SIZES);
	MemoryContextReset(sig_cxt);
	nsig = 0;
	if (envelope == NULL || len < sizeof(key) + 2)
		return;
	/* ours is the last member: the caller's message may spell the key too */
	for (size_t i = len - (sizeof(key) - 1) + 1; i-- > 0;)
		if (memcmp(envelope + i, key, sizeof(key) - 1) == 0)
		{
			start = envelope + i + sizeof(key) - 1;
			break;
		}
	if (start == NULL)
		return;
	/* the JSON string ends at the envelope's closing "} */
	end = envelope + len - 2;
	if (end <= start || end[0] != '"' || end[1] != '}')
		return;
	/* DCI: ... signature=\"<base64>\" (escaped in the JSON text); JWS: the last segment */
	v = NULL;
	for (const char *p = start; p + 12 <= end; p++)
		if (memcmp(p, "signature=\\\"", 12) == 0)
			v = p + 12;
	if (v != NULL)
	{
		const char *q = v;

		while (q < end && *q != '\\')
			q++;
		end = q;
	}
	else
	{
		v = start;
		for (const char *p = start; p < end; p++)
			if (*p == '.')
				v = p + 1;
	}
	if (end - v < REDACT_MIN_LEN)
		return;
	old = MemoryContextSwitchTo(sig_cxt);
	target = sig_needles;
	target_max = MAX_SIG_NEEDLES;
	add_secret(&nsig, pnstrdup(v, end - v));
	target = needles;
	target_max = MAX_NEEDLES;
	MemoryContextSwitchTo(old);
}

/* a cancel or statement_timeout stops a slow redaction (redact.c asks) */
static bool
interrupt_pending(void)
{
	return InterruptPending;
}

char *
dci_redact(const DciSource *src, char *text, size_t len, size_t *outlen)
{
	char  *out = NULL;
	size_t out_len = 0;
	int	   rc;
	char  *result;

	*outlen = len;
	if (src == NULL || text == NULL)
		return text;
	load_needles(src);
	load_token_needles(src->access_token);
	if (nfixed + ntoken + nsig == 0)
		return text;
	memcpy(needles + nfixed + ntoken, sig_needles, sizeof(RedactNeedle) * nsig);
	/* an interrupt that is no cancel (a barrier, say) lets it start again */
	while ((rc = redact_text(needles, nfixed + ntoken + nsig, text, len, &out, &out_len,
							 interrupt_pending)) == -2)
		CHECK_FOR_INTERRUPTS();
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
	char  *copy = pnstrdup(text, len);
	size_t copy_len;

	copy = dci_redact(src, copy, strlen(copy), &copy_len);
	return dci_quote_text(copy, copy_len);
}
