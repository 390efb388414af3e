/*
 * jwk_set_test.c
 *		A registry's JWK Set (src/jwk_set.c): the fixture keys as JWKs come
 *		back as the same public keys with the same RFC 7638 thumbprints; the
 *		kid rules (whole kidId, the algorithm spelled either way, the key_id
 *		part, the thumbprint); the refusals (private key material, wrong
 *		types, sizes, counts, duplicate kids, odd key sizes) never quoting a
 *		value; keys of other kinds skipped; Cache-Control max-age.
 *
 *	jwk_set_test FIXTURE_DIR
 */
#include "base64.h"
#include "jwk_set.h"
#include "sig_field.h"

#include "unit.h"

static char *
set_of(const char *a, const char *b)
{
	char *s = malloc(strlen(a) + (b ? strlen(b) : 0) + 16);

	sprintf(s, "{\"keys\":[%s%s%s]}", a, b ? "," : "", b ? b : "");
	return s;
}

/* parse must fail with err containing want, and never the secret */
static void
refused(const char *doc, const char *want, const char *secret, const char *what)
{
	char	   err[256] = "";
	DciJwkSet *set = dci_jwkset_parse(doc, strlen(doc), err, sizeof(err));

	CHECK(set == NULL, "%s: accepted", what);
	dci_jwkset_free(set);
	CHECK(strstr(err, want) != NULL, "%s: error \"%s\" lacks \"%s\"", what, err, want);
	CHECK(secret == NULL || strstr(err, secret) == NULL, "%s: the error quotes the value", what);
}

static void
round_trip(DciSigKey *ed_pub, DciSigKey *rsa_pub)
{
	char	  *ed_tp = dci_sigkey_thumbprint(ed_pub);
	char	  *rsa_tp = dci_sigkey_thumbprint(rsa_pub);
	char	  *ed_jwk = dci_sigkey_jwk(ed_pub, "reg|k1|ed25519");
	char	  *rsa_jwk = dci_sigkey_jwk(rsa_pub, "reg|k2|rs256");
	char	  *doc = set_of(ed_jwk, rsa_jwk);
	char	   err[256] = "";
	DciJwkSet *set = dci_jwkset_parse(doc, strlen(doc), err, sizeof(err));

	CHECK(set != NULL && set->nkeys == 2, "the fixture keys as a set: %s", err);
	if (set != NULL && set->nkeys == 2)
	{
		CHECK(dci_sigkey_same_public(set->keys[0].key, ed_pub), "Ed25519 from x");
		CHECK(dci_sigkey_same_public(set->keys[1].key, rsa_pub), "RSA from n and e");
		CHECK_STR(set->keys[0].thumbprint, ed_tp, "Ed25519 thumbprint");
		CHECK_STR(set->keys[1].thumbprint, rsa_tp, "RSA thumbprint");

		/* the kid rules */
		CHECK(dci_jwkset_find(set, "reg|k1|ed25519", DCI_SIG_ED25519) == &set->keys[0], "the whole kidId");
		CHECK(dci_jwkset_find(set, "reg|k2|rsa-sha256", DCI_SIG_RSA_SHA256) == &set->keys[1],
			  "rsa-sha256 finds the rs256 kid");
		CHECK(dci_jwkset_find(set, "other|k2|rs256", DCI_SIG_RSA_SHA256) == NULL, "another sender_id");
		CHECK(dci_jwkset_find(set, "reg|k1|ed25519", DCI_SIG_RSA_SHA256) == NULL, "another algorithm");
		CHECK(dci_jwkset_find(set, "reg|k3|ed25519", DCI_SIG_ED25519) == NULL, "an unknown kid");
		CHECK(dci_jwkset_find(set, rsa_tp, DCI_SIG_UNKNOWN) == &set->keys[1], "a JWS kid: the thumbprint");
		{
			char kid[200];

			snprintf(kid, sizeof(kid), "anyone|%s|ed25519", ed_tp);
			CHECK(dci_jwkset_find(set, kid, DCI_SIG_ED25519) == &set->keys[0], "the thumbprint as key_id");
		}
		CHECK(dci_jwkset_find(set, NULL, DCI_SIG_ED25519) == &set->keys[0], "no kid, one Ed25519 key");
		CHECK(dci_jwkset_find(set, NULL, DCI_SIG_UNKNOWN) == NULL, "no kid, two keys");
	}
	dci_jwkset_free(set);
	free(doc);

	/* a kid that is only the key_id part, and a better match wins over it */
	{
		char *a = dci_sigkey_jwk(ed_pub, "k1");
		char *b = dci_sigkey_jwk(ed_pub, "reg|k1|ed25519");
		char *d = set_of(a, b);

		set = dci_jwkset_parse(d, strlen(d), err, sizeof(err));
		CHECK(set != NULL && dci_jwkset_find(set, "reg|k1|ed25519", DCI_SIG_ED25519) == &set->keys[1],
			  "the whole kidId before the key_id part");
		CHECK(set != NULL && dci_jwkset_find(set, "x|k1|ed25519", DCI_SIG_ED25519) == &set->keys[0],
			  "the key_id part");
		dci_jwkset_free(set);
		free(d);
		/* the same kid twice: refused */
		free(a);
		a = dci_sigkey_jwk(rsa_pub, "reg|k1|ed25519");
		d = set_of(a, b);
		refused(d, "same kid", NULL, "duplicate kid");
		free(d);
		free(a);
		free(b);
	}

	/* skipped: another use, alg or type; then a kid is unknown, not an error */
	{
		const char *d = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"},"
						"{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AA\"},"
						"{\"kty\":\"RSA\",\"alg\":\"PS256\",\"n\":\"AA\",\"e\":\"AQAB\"},"
						"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"use\":\"enc\",\"x\":\"AA\"}]}";

		set = dci_jwkset_parse(d, strlen(d), err, sizeof(err));
		CHECK(set != NULL && set->nkeys == 0 && set->skipped == 4, "four keys skipped: %s", err);
		dci_jwkset_free(set);
	}
	free(ed_tp);
	free(rsa_tp);
	free(ed_jwk);
	free(rsa_jwk);
}

static void
refusals(DciSigKey *ed_pub)
{
	char *jwk = dci_sigkey_jwk(ed_pub, "k1");
	char *x = strstr(jwk, "\"x\":\"") + 5;
	char  xval[64];
	char  doc[4096];

	memcpy(xval, x, strchr(x, '"') - x);
	xval[strchr(x, '"') - x] = '\0';

	snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"d\":\"c2VjcmV0LXNlZWQ\"}]}", xval);
	refused(doc, "private key material (\"d\")", "c2VjcmV0LXNlZWQ", "d");
	refused("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", "(\"k\")", "c2VjcmV0", "a symmetric key");
	refused("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\",\"p\":\"c2VjcmV0\"}]}", "(\"p\")", "c2VjcmV0", "p");
	refused("{\"keys\":{}}", "\"keys\" array", NULL, "keys an object");
	refused("[]", "\"keys\" array", NULL, "an array");
	refused("{\"keys\":[1]}", "not a JSON object", NULL, "a number as key");
	refused("{\"keys\":[{\"crv\":\"Ed25519\"}]}", "\"kty\"", NULL, "no kty");
	refused("{\"keys\":[{\"kty\":7}]}", "\"kty\"", NULL, "kty a number");
	refused("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":[]}]}", "\"x\"", NULL, "x an array");
	refused("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}]}", "\"x\"", NULL, "no x");
	refused("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"A+/=\"}]}", "base64url", NULL, "x not base64url");
	refused("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}", "x must be 32", NULL, "x of 3 bytes");
	refused("{\"keys\":[{\"kty\":\"OKP\",\"crv\":5,\"x\":\"AAAA\"}]}", "\"crv\"", NULL, "crv a number");
	refused("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", "at least 2048", NULL, "RSA of 17 bits");
	refused("{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\"}]}", "\"n\"", NULL, "no n");
	{
		/* padding is tolerated (some publishers pad), nothing else */
		char	   err[256] = "";
		DciJwkSet *set;

		snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s=\"}]}", xval);
		set = dci_jwkset_parse(doc, strlen(doc), err, sizeof(err));
		CHECK(set != NULL && set->nkeys == 1 && dci_sigkey_same_public(set->keys[0].key, ed_pub), "x padded: %s", err);
		dci_jwkset_free(set);
		snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s===\"}]}", xval);
		refused(doc, "base64url", NULL, "x with three padding characters");
	}
	snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":5}]}", xval);
	refused(doc, "\"kid\"", NULL, "kid a number");
	snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"\"}]}", xval);
	refused(doc, "\"kid\"", NULL, "kid empty");
	refused("{\"keys\":[]", "not JSON", NULL, "cut short");
	refused("{\"keys\":[]} x", "not JSON", NULL, "trailing text");
	refused("{\"keys\":[[[[[[[[[[]]]]]]]]]]}", "not JSON", NULL, "too deep");
	{
		/* RSA: even modulus, even exponent, a leading zero, too large */
		unsigned char n[256];
		char		 *nb;

		memset(n, 0xC5, sizeof(n));
		n[255] = 0xC4;
		nb = dci_b64_encode(n, sizeof(n), true);
		snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", nb);
		refused(doc, "not a valid RSA", NULL, "even modulus");
		n[255] = 0xC5;
		free(nb);
		nb = dci_b64_encode(n, sizeof(n), true);
		snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAA\"}]}", nb);
		refused(doc, "exponent", NULL, "even exponent");
		snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AAE\"}]}", nb);
		refused(doc, "leading zero", NULL, "exponent with a leading zero");
		snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAAAAAAAAAB\"}]}", nb);
		refused(doc, "exponent", NULL, "exponent of 9 bytes");
		free(nb);
	}
	{
		size_t big = DCI_JWKS_MAX_BYTES + 1;
		char  *s = malloc(big + 1);
		char   err[256] = "";

		memset(s, ' ', big);
		s[big] = '\0';
		CHECK(dci_jwkset_parse(s, big, err, sizeof(err)) == NULL && strstr(err, "bytes") != NULL,
			  "too large: %s", err);
		free(s);
	}
	{
		char *s = malloc(64 * 100 + 64);
		char  err[256] = "";
		char *p = s;

		p += sprintf(p, "{\"keys\":[");
		for (int i = 0; i <= DCI_JWKS_MAX_KEYS; i++)
			p += sprintf(p, "%s{\"kty\":\"EC\"}", i ? "," : "");
		sprintf(p, "]}");
		CHECK(dci_jwkset_parse(s, strlen(s), err, sizeof(err)) == NULL && strstr(err, "more than") != NULL,
			  "too many keys: %s", err);
		free(s);
	}
	free(jwk);
}

static void
cache_control(void)
{
	CHECK(dci_cache_control_max_age(NULL) == -1, "none");
	CHECK(dci_cache_control_max_age("public") == -1, "no max-age");
	CHECK(dci_cache_control_max_age("max-age=600") == 600, "max-age");
	CHECK(dci_cache_control_max_age("public, Max-Age=\"30\", must-revalidate") == 30, "quoted, mixed case");
	CHECK(dci_cache_control_max_age("s-maxage=5, max-age=60") == 60, "s-maxage ignored");
	CHECK(dci_cache_control_max_age("max-age=60, no-cache") == 0, "no-cache");
	CHECK(dci_cache_control_max_age("no-store") == 0, "no-store");
	CHECK(dci_cache_control_max_age("max-age=x") == -1, "not a number");
	CHECK(dci_cache_control_max_age("max-age=99999999999999999999") > 0, "huge: clamped, positive");
}

static void
algorithm_names(void)
{
	CHECK(dci_sig_alg_from_any_name("rs256") == DCI_SIG_RSA_SHA256, "rs256");
	CHECK(dci_sig_alg_from_any_name("rsa-sha256") == DCI_SIG_RSA_SHA256, "rsa-sha256");
	CHECK(dci_sig_alg_from_any_name("ed25519") == DCI_SIG_ED25519, "ed25519");
	CHECK(dci_sig_alg_from_any_name("RS256") == DCI_SIG_UNKNOWN, "RS256 is JOSE's, not a DCI name");
	CHECK(dci_sig_alg_from_name("rs256") == DCI_SIG_UNKNOWN, "the column's names stay two");
	CHECK_STR(dci_sig_alg_openspp_name(DCI_SIG_RSA_SHA256), "rs256", "OpenSPP's RSA name");
}

/* a field signed as "rs256" verifies under the key, as "rsa-sha256" does */
static void
rs256_field(DciSigKey *rsa_priv, DciSigKey *rsa_pub)
{
	const char *hm = "{\"header\":{},\"message\":{}}";
	char		err[256] = "";
	char	   *f = dci_sig_sign_as(rsa_priv, "reg", "k2", "rs256", hm, strlen(hm), 1000, 1300, err, sizeof(err));

	CHECK(f != NULL && strstr(f, "kidId=\"reg|k2|rs256\", algorithm=\"rs256\"") != NULL, "the field: %s", f ? f : err);
	CHECK(f != NULL && dci_sig_verify(rsa_pub, f, hm, strlen(hm), 1100) == DCI_VERIFY_OK, "rs256 verifies");
	free(f);
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "test/fixtures/signing";
	char		err[256] = "";
	DciSigKey  *rsa_priv = unit_load_key(dir, "rsa_private.pem", true, err, sizeof(err));
	DciSigKey  *rsa_pub = unit_load_key(dir, "rsa_public.pem", false, err, sizeof(err));
	DciSigKey  *ed_pub = unit_load_key(dir, "ed25519_public.pem", false, err, sizeof(err));

	if (!rsa_priv || !rsa_pub || !ed_pub)
	{
		fprintf(stderr, "cannot load the fixture keys: %s\n", err);
		return 2;
	}
	round_trip(ed_pub, rsa_pub);
	refusals(ed_pub);
	cache_control();
	algorithm_names();
	rs256_field(rsa_priv, rsa_pub);
	dci_sigkey_free(rsa_priv);
	dci_sigkey_free(rsa_pub);
	dci_sigkey_free(ed_pub);
	return unit_finish("jwk_set");
}
