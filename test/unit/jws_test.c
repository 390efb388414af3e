/*
 * jws_test.c
 *		The second signature format, a compact JWS (RS256) as OpenCRVS signs:
 *		base64url (RFC 4648 §5) both ways and its strictness; a JWS made by
 *		Python's `cryptography` with the fixture RSA key (jws_vector.inc)
 *		reproduced byte for byte and verified; the parser's refusals; the
 *		envelope check (payload holds the same header and message).
 *
 *	jws_test FIXTURE_DIR
 */
#include "canonical_json.h"
#include "base64.h"
#include "jws.h"

#include "unit.h"
#include "jws_vector.inc"

static char *
jws_of(const char *header, const char *payload, const char *sig)
{
	char *h = dci_b64_encode((const unsigned char *) header, strlen(header), true);
	char *p = dci_b64_encode((const unsigned char *) payload, strlen(payload), true);
	char *s = malloc(strlen(h) + strlen(p) + strlen(sig) + 3);

	sprintf(s, "%s.%s.%s", h, p, sig);
	free(h);
	free(p);
	return s;
}

static void
base64url(void)
{
	static const char *const rfc[][2] = {
		{"", ""},
		{"f", "Zg"},
		{"fo", "Zm8"},
		{"foo", "Zm9v"},
		{"foob", "Zm9vYg"},
		{"fooba", "Zm9vYmE"},
		{"foobar", "Zm9vYmFy"},
	};
	static const unsigned char bin[] = {0xfb, 0xff, 0xbf, 0x00, 0x3e};
	static const char *const   bad[] = {
		  "Zg==",
		  "Z",
		  "Zm9vY",
		  "Zh",
		  "Zm9=",
		  "+/8",
		  "Zm 9v",
		  "Zm9v\n",
		  "Zm9vYmF=",
	  };
	size_t		   n;
	char		  *e;
	unsigned char *d;

	for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++)
	{
		e = dci_b64_encode((const unsigned char *) rfc[i][0], strlen(rfc[i][0]), true);
		CHECK_STR(e, rfc[i][1], "base64url encode");
		free(e);
		d = dci_b64_decode(rfc[i][1], strlen(rfc[i][1]), true, &n);
		CHECK(d != NULL && n == strlen(rfc[i][0]) && memcmp(d, rfc[i][0], n) == 0 && d[n] == '\0',
			  "base64url decode %s", rfc[i][1]);
		free(d);
	}
	e = dci_b64_encode(bin, sizeof(bin), true);
	CHECK_STR(e, "-_-_AD4", "the URL alphabet");
	d = dci_b64_decode(e, strlen(e), true, &n);
	CHECK(d != NULL && n == sizeof(bin) && memcmp(d, bin, n) == 0, "binary round trip");
	free(d);
	free(e);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		d = dci_b64_decode(bad[i], strlen(bad[i]), true, &n);
		CHECK(d == NULL, "base64url refuses \"%s\"", bad[i]);
		free(d);
	}
}

static void
vector(DciSigKey *rsa_priv, DciSigKey *rsa_pub, DciSigKey *ed_priv, DciSigKey *ed_pub)
{
	char   err[256] = "";
	char  *kid = dci_sigkey_thumbprint(rsa_pub);
	char  *jws;
	DciJws j;

	CHECK_STR(kid, JWS_VECTOR_KID, "kid = RFC 7638 thumbprint of the fixture RSA key");
	jws = dci_jws_sign(rsa_priv, kid, JWS_VECTOR_PAYLOAD, strlen(JWS_VECTOR_PAYLOAD), err, sizeof(err));
	CHECK_STR(jws, JWS_VECTOR, "the JWS byte for byte (Python's cryptography made it)");
	free(jws);

	CHECK(dci_jws_parse(JWS_VECTOR, strlen(JWS_VECTOR), &j, err, sizeof(err)), "parse: %s", err);
	CHECK_STR(j.alg, "RS256", "alg");
	CHECK_STR(j.kid, JWS_VECTOR_KID, "kid");
	CHECK_STR(j.header, "{\"alg\":\"RS256\",\"kid\":\"" JWS_VECTOR_KID "\"}", "protected header");
	CHECK(j.payload_len == strlen(JWS_VECTOR_PAYLOAD) &&
			  memcmp(j.payload, JWS_VECTOR_PAYLOAD, j.payload_len) == 0,
		  "payload");
	CHECK(j.sig_len == 256, "an RSA-2048 signature is 256 bytes (%zu)", j.sig_len);
	CHECK(j.signing_input_len == (size_t) (strrchr(JWS_VECTOR, '.') - JWS_VECTOR), "signing input");
	dci_jws_free(&j);

	CHECK(dci_jws_verify(rsa_pub, JWS_VECTOR, strlen(JWS_VECTOR), NULL) == DCI_VERIFY_OK, "verifies");
	CHECK(dci_jws_verify(rsa_priv, JWS_VECTOR, strlen(JWS_VECTOR), NULL) == DCI_VERIFY_OK,
		  "verifies with the private key's public half");
	CHECK(dci_jws_verify(ed_pub, JWS_VECTOR, strlen(JWS_VECTOR), NULL) == DCI_VERIFY_ALGORITHM,
		  "an Ed25519 key does not verify RS256");
	CHECK(dci_jws_sign(ed_priv, "k", "{}", 2, err, sizeof(err)) == NULL && strstr(err, "RSA"),
		  "an Ed25519 key does not sign a JWS: %s", err);
	CHECK(dci_jws_sign(rsa_pub, "k", "{}", 2, err, sizeof(err)) == NULL, "a public key does not sign");
	CHECK(dci_jws_sign(rsa_priv, "k\"", "{}", 2, err, sizeof(err)) == NULL, "a kid that cannot be written");

	/* without kid; an empty payload */
	jws = dci_jws_sign(rsa_priv, NULL, "", 0, err, sizeof(err));
	CHECK(jws != NULL && strncmp(jws, "eyJhbGciOiJSUzI1NiJ9..", 22) == 0, "{\"alg\":\"RS256\"}, empty payload: %s", jws);
	CHECK(jws && dci_jws_verify(rsa_pub, jws, strlen(jws), NULL) == DCI_VERIFY_OK, "verifies");
	free(jws);

	/* every changed byte of the signing input or the signature fails */
	{
		size_t len = strlen(JWS_VECTOR);
		char  *t = strdup(JWS_VECTOR);
		int	   failures = 0;

		for (size_t i = 0; i < len; i += 7)
		{
			char c = t[i];

			if (c == '.')
				continue;
			t[i] = c == 'A' ? 'B' : 'A';
			if (dci_jws_verify(rsa_pub, t, len, NULL) == DCI_VERIFY_OK)
				failures++;
			t[i] = c;
		}
		CHECK(failures == 0, "%d tampered JWS verified", failures);
		free(t);
	}
}

static void
refusals(DciSigKey *rsa_pub)
{
	static const char *const bad[] = {
		"",
		"abc",
		"a.b",
		"a.b.c.d",
		"a.b.c.d.e",
		".eyJ9.c2ln",
		"eyJhbGciOiJSUzI1NiJ9.e30.",
		"eyJhbGciOiJSUzI1NiJ9=.e30.c2ln",
		"eyJhbGciOiJSUzI1NiJ9.e30.c2ln=",
		"eyJhbGciOiJSUzI1NiJ9.e3=.c2ln",
	};
	static const char *const bad_headers[] = {
		"[]",
		"\"RS256\"",
		"{",
		"{}",
		"{\"alg\":256}",
		"{\"alg\":null}",
		"{\"alg\":\"RS256\",\"kid\":1}",
		"{\"alg\":\"RS256\",\"crit\":[\"b64\"],\"b64\":false}",
		"not json",
		"{\"alg\":\"RS256\"} x",
		/* what a lenient JSON reader takes, and Python's json does not */
		"{'alg':'RS256'}",
		"{\"alg\":\"RS256\",}",
		"{\"alg\":\"RS256\"} /* x */",
		"{\"alg\":\"RS256\\u0000junk\"}",
		"{\"alg\":\"RS256\",\"kid\":\"a\tb\"}",
		"{\"alg\":True}",
	};
	DciJws j;
	char   err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		CHECK(!dci_jws_parse(bad[i], strlen(bad[i]), &j, err, sizeof(err)), "refuses \"%s\"", bad[i]);
		CHECK(dci_jws_verify(rsa_pub, bad[i], strlen(bad[i]), NULL) ==
				  (*bad[i] ? DCI_VERIFY_MALFORMED : DCI_VERIFY_MISSING),
			  "verify refuses \"%s\"", bad[i]);
	}
	for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++)
	{
		char *t = jws_of(bad_headers[i], "{}", "c2ln");

		CHECK(!dci_jws_parse(t, strlen(t), &j, err, sizeof(err)), "refuses header %s", bad_headers[i]);
		free(t);
	}
	{
		/* other algorithms, "none" included, are not RS256; nested "alg" is not the header's */
		static const char *const other[] = {
			"{\"alg\":\"none\"}",
			"{\"alg\":\"HS256\"}",
			"{\"alg\":\"EdDSA\"}",
			"{\"alg\":\"rs256\"}",
			"{\"x\":{\"alg\":\"RS256\"},\"alg\":\"PS256\"}",
		};

		for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		{
			char *t = jws_of(other[i], "{}", "c2ln");

			CHECK(dci_jws_parse(t, strlen(t), &j, err, sizeof(err)) && strcmp(j.alg, "RS256") != 0,
				  "parses %s", other[i]);
			dci_jws_free(&j);
			CHECK(dci_jws_verify(rsa_pub, t, strlen(t), NULL) == DCI_VERIFY_ALGORITHM,
				  "alg of %s is refused", other[i]);
			free(t);
		}
	}
	{
		/* JSON spelled otherwise: escapes, whitespace, key order, duplicates (the last wins) */
		char *t = jws_of(" { \"kid\" : \"k\\u00e9\", \"alg\":\"none\", \"\\u0061lg\" : \"RS\\u0032\\u00356\" } ",
						 "", "c2ln");

		CHECK(dci_jws_parse(t, strlen(t), &j, err, sizeof(err)), "parses a spelled-out header: %s", err);
		CHECK_STR(j.alg, "RS256", "alg, unescaped");
		CHECK_STR(j.kid, "k\xc3\xa9", "kid decoded");
		dci_jws_free(&j);
		free(t);
	}
}

static void
envelopes(DciSigKey *rsa_pub, DciSigKey *ed_pub)
{
	/* the same header and message as the vector's payload, spelled otherwise */
	const char *same = "{\"message\": {\"n\": [1, 2.50, 0.0000001], \"transaction_id\": \"T-1\"},"
					   " \"signature\": \"" JWS_VECTOR "\", \"header\": {\"note\": \"Jos\\u00e9 \\u00e9\","
					   " \"sender_id\": \"openspp.example\", \"action\": \"search\", \"message_id\": \"m-1\","
					   " \"version\": \"1.0.0\"}}";
	const char *other = "{\"header\":{\"version\":\"1.0.0\",\"message_id\":\"m-2\",\"action\":\"search\","
						"\"sender_id\":\"openspp.example\",\"note\":\"Jos\\u00e9 \\u00e9\"},"
						"\"message\":{\"transaction_id\":\"T-1\",\"n\":[1,2.5,1e-07]},\"signature\":\"" JWS_VECTOR "\"}";
	const char *unsigned_ = "{\"header\":{},\"message\":{},\"signature\":\"\"}";
	const char *nosig = "{\"header\":{},\"message\":{}}";
	const char *dci = "{\"header\":{},\"message\":{},\"signature\":\"namespace=\\\"dci\\\", algorithm=\\\"rsa-sha256\\\"\"}";

	CHECK(dci_jws_verify_envelope(rsa_pub, same, strlen(same)) == DCI_VERIFY_OK,
		  "the payload's header and message, in another spelling");
	CHECK(dci_jws_verify_envelope(rsa_pub, other, strlen(other)) == DCI_VERIFY_PAYLOAD,
		  "another message_id");
	CHECK(dci_jws_verify_envelope(ed_pub, same, strlen(same)) == DCI_VERIFY_ALGORITHM, "Ed25519 key");
	CHECK(dci_jws_verify_envelope(rsa_pub, unsigned_, strlen(unsigned_)) == DCI_VERIFY_MISSING, "\"\"");
	CHECK(dci_jws_verify_envelope(rsa_pub, nosig, strlen(nosig)) == DCI_VERIFY_MISSING, "no signature");
	CHECK(dci_jws_verify_envelope(rsa_pub, dci, strlen(dci)) == DCI_VERIFY_MALFORMED, "a DCI field");
	CHECK(dci_jws_verify_envelope(rsa_pub, "[]", 2) == DCI_VERIFY_MALFORMED, "not an envelope");
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "test/fixtures/signing";
	char		err[256] = "";
	DciSigKey  *rsa_priv,
		*rsa_pub,
		*ed_priv,
		*ed_pub;

	rsa_priv = unit_load_key(dir, "rsa_private.pem", true, err, sizeof(err));
	rsa_pub = unit_load_key(dir, "rsa_public.pem", false, err, sizeof(err));
	ed_priv = unit_load_key(dir, "ed25519_private.pem", true, err, sizeof(err));
	ed_pub = unit_load_key(dir, "ed25519_public.pem", false, err, sizeof(err));
	if (!rsa_priv || !rsa_pub || !ed_priv || !ed_pub)
	{
		fprintf(stderr, "cannot load the fixture keys: %s\n", err);
		return 2;
	}

	base64url();
	vector(rsa_priv, rsa_pub, ed_priv, ed_pub);
	refusals(rsa_pub);
	envelopes(rsa_pub, ed_pub);

	dci_sigkey_free(rsa_priv);
	dci_sigkey_free(rsa_pub);
	dci_sigkey_free(ed_priv);
	dci_sigkey_free(ed_pub);
	return unit_finish("jws");
}
