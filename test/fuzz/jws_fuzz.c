/*
 * jws_fuzz.c
 *		libFuzzer target for the compact JWS parser (the second signature
 *		format) and the base64url decoder: any input is refused or parsed; a
 *		parsed JWS encodes back to exactly the input (base64url decoding is
 *		strict, so each value has one text); a JWS that verifies under the
 *		fixture key (a seed is one) no longer does once its signature is
 *		changed; the input as an envelope never crashes the verifier.
 */
#include "base64.h"
#include "jws.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fixtures/signing/rsa_public.pem */
static const char rsa_public_pem[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAnqkn1KFjf9YWaxWVukdH\n"
	"48WJLE2RGwkvD+QpcPczQkg/m6Jx8x0a6VyE9hYgiFf7HzbmUvyM9HpxLLjY73m+\n"
	"WZi9TZQabFsmIG2z1pqfNybr5eZj5/5le1N2um/znvGnKLwqXMwMUAHMSalgKWs+\n"
	"KeLDDA0N6cffX3J5D0VCOZ3sMNgHeoki8GDuZ40/K5XerFWzLvR8ORsU4/gncQR4\n"
	"H1ap6YlW3nwFZdh6W/sYknV10Ybgnyq8dMJYfho9o3VitdoCvH8jtlzM08dleP48\n"
	"Uvo5GlPq2aW5I0z3ZYNmXA++LXbDythMClJTlMkVzDeKL2tWA/I6lLpD++yONgLT\n"
	"TwIDAQAB\n"
	"-----END PUBLIC KEY-----\n";

static DciSigKey *key;

static void
check_segment(const unsigned char *decoded, size_t n, const char *text, size_t len)
{
	char *e = dci_b64_encode(decoded, n, true);

	if (e == NULL || strlen(e) != len || memcmp(e, text, len) != 0)
		abort();
	free(e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	  *s = (const char *) data;
	DciJws		   j;
	char		   err[128];
	size_t		   n;
	unsigned char *d;

	if (key == NULL && (key = dci_sigkey_load(rsa_public_pem, false, err, sizeof(err))) == NULL)
		abort();

	/* the decoder: what it takes, it gives back unchanged */
	d = dci_b64_decode(s, size, true, &n);
	if (d != NULL)
	{
		check_segment(d, n, s, size);
		free(d);
	}

	if (dci_jws_parse(s, size, &j, err, sizeof(err)))
	{
		const char *d1 = memchr(s, '.', size);
		const char *d2 = memchr(d1 + 1, '.', s + size - d1 - 1);

		if (j.alg == NULL || j.header == NULL || j.payload == NULL || j.sig == NULL ||
			j.sig_len == 0 || j.signing_input_len != (size_t) (d2 - s))
			abort();
		check_segment((const unsigned char *) j.header, j.header_len, s, d1 - s);
		check_segment(j.payload, j.payload_len, d1 + 1, d2 - d1 - 1);
		check_segment(j.sig, j.sig_len, d2 + 1, s + size - d2 - 1);
		dci_jws_free(&j);
		if (dci_jws_verify(key, s, size, NULL) == DCI_VERIFY_OK)
		{
			char *t = malloc(size);

			memcpy(t, s, size);
			t[size - 1] = t[size - 1] == 'A' ? 'Q' : 'A';
			if (dci_jws_verify(key, t, size, NULL) == DCI_VERIFY_OK)
				abort();
			free(t);
		}
	}
	else if (j.header != NULL || j.alg != NULL || j.payload != NULL || j.sig != NULL)
		abort(); /* a refusal leaves nothing behind */

	/* the input as an answer whose "signature" is a JWS */
	(void) dci_jws_verify_envelope(key, s, size);
	return 0;
}
