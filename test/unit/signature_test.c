/*
 * signature_test.c
 *		The DCI signature scheme: every vector of fixtures/signing/vectors.json
 *		reproduced byte for byte (canonical text, digest, signing string,
 *		signature, whole field) with the fixture keys, both algorithms; the
 *		verifier's rules (README "Signing" step 5); field parsing; keys, thumbprints,
 *		JWKs and key generation.
 *
 *	signature_test FIXTURE_DIR
 */
#include "canonical_json.h"
#include "sig_field.h"

#include <json-c/json.h>

#include "unit.h"

static const char *
member(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int64_t
member_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

static void
vectors(const char *dir, DciSigKey *ed_priv, DciSigKey *ed_pub, DciSigKey *rsa_priv, DciSigKey *rsa_pub)
{
	char			   *text = unit_read_file(dir, "vectors.json");
	struct json_object *vs = json_tokener_parse(text);
	size_t				n = json_object_array_length(vs);
	int					algs[3] = {0};

	for (size_t i = 0; i < n; i++)
	{
		struct json_object *v = json_object_array_get_idx(vs, i);
		struct json_object *env;
		const char		   *name = member(v, "name");
		const char		   *alg = member(v, "algorithm");
		int64_t				created = member_int(v, "created");
		int64_t				expires = member_int(v, "expires");
		DciSigAlg			a = dci_sig_alg_from_name(alg);
		DciSigKey		   *priv = a == DCI_SIG_ED25519 ? ed_priv : rsa_priv;
		DciSigKey		   *pub = a == DCI_SIG_ED25519 ? ed_pub : rsa_pub;
		char				what[160];
		char				digest[45];
		const char		   *envtext;
		char			   *hm,
			*sig,
			*ss,
			*s,
			*field;
		size_t		hm_len;
		DciSigField f;

		algs[a]++;
		json_object_object_get_ex(v, "envelope", &env);
		envtext = json_object_to_json_string_ext(env, JSON_C_TO_STRING_SPACED);

		/* 1. canonical text and digest */
		snprintf(what, sizeof(what), "%s: canonical", name);
		CHECK(cj_envelope(envtext, strlen(envtext), &hm, &hm_len, &sig, NULL, 0), "%s", what);
		CHECK_STR(hm, member(v, "canonical"), what);
		dci_sig_digest(hm, hm_len, digest);
		snprintf(what, sizeof(what), "%s: digest", name);
		CHECK_STR(digest, member(v, "digest"), what);
		CHECK(expires == created + DCI_SIG_LIFETIME, "%s: lifetime", name);

		/* 2. signing string */
		ss = dci_sig_signing_string(created, expires, digest);
		snprintf(what, sizeof(what), "%s: signing string", name);
		CHECK_STR(ss, member(v, "signing_string"), what);

		/* 3. signature (both schemes are deterministic) */
		s = dci_sigkey_sign(priv, ss, strlen(ss), NULL, 0);
		snprintf(what, sizeof(what), "%s: signature", name);
		CHECK_STR(s, member(v, "signature"), what);
		CHECK(dci_sigkey_verify(pub, ss, strlen(ss), member(v, "signature")), "%s: raw verify", name);

		/* 4. the whole field */
		field = dci_sig_sign(priv, member(v, "sender_id"), member(v, "key_id"), hm, hm_len,
							 created, expires, NULL, 0);
		snprintf(what, sizeof(what), "%s: field", name);
		CHECK_STR(field, member(v, "signature_field"), what);

		/* parse it back */
		CHECK(dci_sig_field_parse(member(v, "signature_field"), strlen(member(v, "signature_field")),
								  &f, NULL, 0),
			  "%s: parse", name);
		CHECK(f.created == created && f.expires == expires, "%s: parsed times", name);
		CHECK_STR(f.algorithm, alg, "parsed algorithm");
		CHECK_STR(f.signature, member(v, "signature"), "parsed signature");
		CHECK_STR(f.namespace_, "dci", "parsed namespace");
		snprintf(what, sizeof(what), "%s|%s|%s", member(v, "sender_id"), member(v, "key_id"), alg);
		CHECK_STR(f.kid_id, what, "parsed kidId");
		dci_sig_field_free(&f);

		/* 5. the verifier's rules */
		CHECK(dci_sig_verify(pub, field, hm, hm_len, created) == DCI_VERIFY_OK, "%s: verify at created", name);
		CHECK(dci_sig_verify(pub, field, hm, hm_len, expires) == DCI_VERIFY_OK, "%s: verify at expires", name);
		CHECK(dci_sig_verify(pub, field, hm, hm_len, expires + 1) == DCI_VERIFY_EXPIRED, "%s: expired", name);
		CHECK(dci_sig_verify(pub, field, hm, hm_len, created - DCI_SIG_CLOCK_SKEW) == DCI_VERIFY_OK,
			  "%s: created 60 s ahead", name);
		CHECK(dci_sig_verify(pub, field, hm, hm_len, created - DCI_SIG_CLOCK_SKEW - 1) == DCI_VERIFY_FUTURE,
			  "%s: created 61 s ahead", name);
		CHECK(dci_sig_verify(a == DCI_SIG_ED25519 ? rsa_pub : ed_pub, field, hm, hm_len, created) ==
				  DCI_VERIFY_ALGORITHM,
			  "%s: the other algorithm's key", name);
		CHECK(dci_sig_verify(pub, "", hm, hm_len, created) == DCI_VERIFY_MISSING, "%s: empty", name);
		CHECK(dci_sig_verify(pub, "garbage", hm, hm_len, created) == DCI_VERIFY_MALFORMED, "%s: garbage", name);
		/* a changed message */
		hm[hm_len - 3] ^= 1;
		CHECK(dci_sig_verify(pub, field, hm, hm_len, created) == DCI_VERIFY_BAD_SIGNATURE,
			  "%s: tampered message", name);
		hm[hm_len - 3] ^= 1;
		/* changed times: the signature covers them */
		{
			char  ts[64];
			char *t;
			char *tampered = strdup(field);

			snprintf(ts, sizeof(ts), "expires=\"%lld\"", (long long) expires);
			t = strstr(tampered, ts);
			t[strlen(ts) - 2]++; /* one second later */
			CHECK(dci_sig_verify(pub, tampered, hm, hm_len, created) == DCI_VERIFY_BAD_SIGNATURE,
				  "%s: tampered expires", name);
			free(tampered);
		}
		/* a whole envelope text with the vector's field */
		{
			struct json_object *e2 = json_object_get(env);
			const char		   *t2;

			json_object_object_add(e2, "signature", json_object_new_string(member(v, "signature_field")));
			t2 = json_object_to_json_string_ext(e2, JSON_C_TO_STRING_PRETTY);
			CHECK(dci_sig_verify_envelope(pub, t2, strlen(t2), created + 10) == DCI_VERIFY_OK,
				  "%s: envelope verifies", name);
			json_object_object_del(e2, "signature");
			t2 = json_object_to_json_string_ext(e2, JSON_C_TO_STRING_PRETTY);
			CHECK(dci_sig_verify_envelope(pub, t2, strlen(t2), created + 10) == DCI_VERIFY_MISSING,
				  "%s: envelope without signature", name);
			json_object_put(e2);
		}
		free(hm);
		free(sig);
		free(ss);
		free(s);
		free(field);
	}
	CHECK(algs[DCI_SIG_ED25519] >= 4 && algs[DCI_SIG_RSA_SHA256] >= 4, "vectors of both algorithms");
	json_object_put(vs);
	free(text);
}

static void
field_parsing(void)
{
	DciSigField				 f;
	char					 err[128];
	static const char *const bad[] = {
		"",
		"algorithm=\"ed25519\"",
		"algorithm=\"ed25519\", created=\"1\", expires=\"2\"",
		"algorithm=\"ed25519\", created=\"1\", expires=\"2\", signature=\"x\", signature=\"y\"",
		"algorithm=\"ed25519\", created=\"-1\", expires=\"2\", signature=\"x\"",
		"algorithm=\"ed25519\", created=\"1\", expires=\"9999999999999999999\", signature=\"x\"",
		"algorithm=\"ed25519\", created=\"1\", expires=\"2\", signature=\"x",
		"algorithm=\"ed25519\" created=\"1\", expires=\"2\", signature=\"x\"",
		"algorithm=ed25519, created=\"1\", expires=\"2\", signature=\"x\"",
		"namespace=\"other\", algorithm=\"ed25519\", created=\"1\", expires=\"2\", signature=\"x\"",
		"headers=\"digest\", algorithm=\"ed25519\", created=\"1\", expires=\"2\", signature=\"x\"",
		"algorithm=\"ed\\25519\", created=\"1\", expires=\"2\", signature=\"x\"",
		"algorithm=\"ed25519\", created=\"1\", expires=\"2\", signature=\"x\",",
		"=\"x\", algorithm=\"ed25519\", created=\"1\", expires=\"2\", signature=\"x\"",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		bool ok = dci_sig_field_parse(bad[i], strlen(bad[i]), &f, err, sizeof(err));

		CHECK(!ok, "accepted bad field %s", bad[i]);
		if (ok)
			dci_sig_field_free(&f);
	}
	/* any order, extra spaces, unknown parameters */
	{
		const char *s = " signature=\"c2ln\" ,created=\"5\",extra=\"?\",  expires=\"305\",algorithm=\"rsa-sha256\"  ";

		CHECK(dci_sig_field_parse(s, strlen(s), &f, err, sizeof(err)), "lenient field: %s", err);
		CHECK(f.created == 5 && f.expires == 305 && f.kid_id == NULL && f.namespace_ == NULL, "lenient values");
		CHECK_STR(f.algorithm, "rsa-sha256", "lenient algorithm");
		dci_sig_field_free(&f);
	}
	/* formatting refuses what could not be parsed back */
	CHECK(dci_sig_field_format("a\"b", "k", "ed25519", 1, 2, "x") == NULL, "quote in sender_id");
	CHECK(dci_sig_field_format("a", "k\n", "ed25519", 1, 2, "x") == NULL, "newline in key_id");
	{
		char *s = dci_sig_field_format(NULL, "k", "ed25519", 1, 301, "c2ln");

		CHECK_STR(s, "namespace=\"dci\", kidId=\"|k|ed25519\", algorithm=\"ed25519\", created=\"1\", "
					 "expires=\"301\", headers=\"(created) (expires) digest\", signature=\"c2ln\"",
				  "no sender_id");
		free(s);
	}
}

static void
keys(const char *dir, DciSigKey *ed_priv, DciSigKey *ed_pub, DciSigKey *rsa_priv, DciSigKey *rsa_pub)
{
	char  err[128];
	char *priv_pem,
		*pub_pem;
	char *t;
	char *jwk;

	CHECK(dci_sigkey_alg(ed_pub) == DCI_SIG_ED25519 && dci_sigkey_alg(rsa_pub) == DCI_SIG_RSA_SHA256, "algorithms");
	CHECK(dci_sigkey_same_public(ed_priv, ed_pub) && dci_sigkey_same_public(rsa_priv, rsa_pub), "pairs match");
	CHECK(!dci_sigkey_same_public(ed_priv, rsa_pub), "different keys differ");
	CHECK(dci_sigkey_has_private(ed_priv) && !dci_sigkey_has_private(ed_pub), "private or not");
	CHECK(dci_sigkey_sign(ed_pub, "x", 1, err, sizeof(err)) == NULL, "a public key cannot sign");

	/* RFC 7638 thumbprints, computed independently with Python */
	t = dci_sigkey_thumbprint(ed_pub);
	CHECK_STR(t, "1IG2tMH7J2wbJZnOf8LJzQitKf7LMvoAElsuDMVM54Y", "Ed25519 thumbprint");
	free(t);
	t = dci_sigkey_thumbprint(rsa_priv);
	CHECK_STR(t, "0AC42Ok4zhELqMtJW_ZA1kZijMxj3fnnJoTkWZ-2em8", "RSA thumbprint");
	free(t);
	jwk = dci_sigkey_jwk(ed_pub, "kid1");
	CHECK_STR(jwk, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg\","
				   "\"kid\":\"kid1\",\"alg\":\"EdDSA\",\"use\":\"sig\"}",
			  "Ed25519 JWK");
	free(jwk);
	jwk = dci_sigkey_jwk(rsa_pub, "kid2");
	CHECK(jwk != NULL && strstr(jwk, "\"kty\":\"RSA\",\"n\":\"nqkn1KFjf9YWaxWVukdH") != NULL &&
			  strstr(jwk, "\"e\":\"AQAB\",\"kid\":\"kid2\",\"alg\":\"RS256\"") != NULL,
		  "RSA JWK: %s", jwk);
	free(jwk);

	/* refusals */
	CHECK(dci_sigkey_load("", false, err, sizeof(err)) == NULL, "empty key");
	CHECK(dci_sigkey_load("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", false, err, sizeof(err)) == NULL,
		  "garbage PEM");
	{
		char *pem = unit_read_file(dir, "ed25519_private.pem");

		CHECK(dci_sigkey_load(pem, false, err, sizeof(err)) == NULL, "a private key is no public key");
		free(pem);
	}

	/* generation, and a round trip through PEM */
	for (int alg = DCI_SIG_ED25519; alg <= DCI_SIG_RSA_SHA256; alg++)
	{
		DciSigKey *gpriv,
			*gpub;
		char	   *field;
		const char *hm = "{\"header\":{},\"message\":{}}";

		CHECK(dci_sigkey_generate(alg, 2048, &priv_pem, &pub_pem, err, sizeof(err)), "generate %d: %s", alg, err);
		gpriv = dci_sigkey_load(priv_pem, true, err, sizeof(err));
		gpub = dci_sigkey_load(pub_pem, false, err, sizeof(err));
		CHECK(gpriv && gpub && dci_sigkey_alg(gpriv) == (DciSigAlg) alg && dci_sigkey_same_public(gpriv, gpub),
			  "generated %d loads", alg);
		field = dci_sig_sign(gpriv, "me", "k", hm, strlen(hm), 1000, 1300, err, sizeof(err));
		CHECK(field && dci_sig_verify(gpub, field, hm, strlen(hm), 1100) == DCI_VERIFY_OK, "generated %d signs", alg);
		CHECK(field && dci_sig_verify(alg == DCI_SIG_ED25519 ? ed_pub : rsa_pub, field, hm, strlen(hm), 1100) ==
						   DCI_VERIFY_BAD_SIGNATURE,
			  "another key of the same algorithm");
		free(field);
		{
			char *again = dci_sigkey_public_pem(gpriv);

			CHECK_STR(again, pub_pem, "public PEM of the private key");
			free(again);
		}
		dci_sigkey_free(gpriv);
		dci_sigkey_free(gpub);
		free(priv_pem);
		free(pub_pem);
	}
	CHECK(!dci_sigkey_generate(DCI_SIG_RSA_SHA256, 1024, &priv_pem, &pub_pem, err, sizeof(err)), "RSA 1024 refused");
	CHECK(!dci_sigkey_generate(DCI_SIG_UNKNOWN, 0, &priv_pem, &pub_pem, err, sizeof(err)), "unknown algorithm");
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "test/fixtures/signing";
	char		err[128] = "";
	DciSigKey  *ed_priv,
		*ed_pub,
		*rsa_priv,
		*rsa_pub;

	ed_priv = unit_load_key(dir, "ed25519_private.pem", true, err, sizeof(err));
	ed_pub = unit_load_key(dir, "ed25519_public.pem", false, err, sizeof(err));
	rsa_priv = unit_load_key(dir, "rsa_private.pem", true, err, sizeof(err));
	rsa_pub = unit_load_key(dir, "rsa_public.pem", false, err, sizeof(err));
	CHECK(ed_priv && ed_pub && rsa_priv && rsa_pub, "fixture keys load: %s", err);
	if (!(ed_priv && ed_pub && rsa_priv && rsa_pub))
		return unit_finish("signature_test");

	vectors(dir, ed_priv, ed_pub, rsa_priv, rsa_pub);
	field_parsing();
	keys(dir, ed_priv, ed_pub, rsa_priv, rsa_pub);
	dci_sigkey_free(ed_priv);
	dci_sigkey_free(ed_pub);
	dci_sigkey_free(rsa_priv);
	dci_sigkey_free(rsa_pub);
	return unit_finish("signature_test");
}
