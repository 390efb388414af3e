/*
 * canonical_json_test.c
 *		Canonical JSON against Python's json module: every pair of
 *		fixtures/signing/canonical_cases.json, the canonical text of every
 *		vector in vectors.json, and the hand-made cases of canonical_cases.inc
 *		(generated with Python).
 *
 *	canonical_json_test FIXTURE_DIR
 */
#include "canonical_json.h"

#include <json-c/json.h>

#include "unit.h"
#include "canonical_cases.inc"

static void
check_canonical(const char *raw, size_t len, const char *want, const char *what)
{
	char   err[256] = "";
	size_t n = 0;
	char  *got = cj_canonicalize(raw, len, &n, err, sizeof(err));

	if (got == NULL)
		CHECK(0, "%s: refused (%s): %s", what, err, raw);
	else
	{
		CHECK_STR(got, want, what);
		CHECK(n == strlen(got), "%s: length %zu", what, n);
		free(got);
	}
}

static void
fixture_cases(const char *dir)
{
	char			   *text = unit_read_file(dir, "canonical_cases.json");
	struct json_object *cases = json_tokener_parse(text);
	size_t				n;

	CHECK(cases != NULL && json_object_is_type(cases, json_type_array), "canonical_cases.json is an array");
	n = json_object_array_length(cases);
	CHECK(n >= 15, "canonical_cases.json has %zu cases", n);
	for (size_t i = 0; i < n; i++)
	{
		struct json_object *c = json_object_array_get_idx(cases, i);
		struct json_object *raw,
			*canon;
		char what[64];

		json_object_object_get_ex(c, "raw", &raw);
		json_object_object_get_ex(c, "canonical", &canon);
		snprintf(what, sizeof(what), "canonical_cases.json[%zu]", i);
		check_canonical(json_object_get_string(raw), json_object_get_string_len(raw),
						json_object_get_string(canon), what);
		/* the canonical form is a fixed point */
		check_canonical(json_object_get_string(canon), json_object_get_string_len(canon),
						json_object_get_string(canon), what);
	}
	json_object_put(cases);
	free(text);
}

static void
vector_cases(const char *dir)
{
	char			   *text = unit_read_file(dir, "vectors.json");
	struct json_object *vectors = json_tokener_parse(text);
	size_t				n = json_object_array_length(vectors);

	CHECK(n >= 8, "vectors.json has %zu vectors", n);
	for (size_t i = 0; i < n; i++)
	{
		struct json_object *v = json_object_array_get_idx(vectors, i);
		struct json_object *env,
			*canon,
			*name;
		const char *envtext;
		char		what[128];
		char	   *hm = NULL;
		char	   *sig = NULL;
		size_t		hm_len;
		char		err[256] = "";

		json_object_object_get_ex(v, "envelope", &env);
		json_object_object_get_ex(v, "canonical", &canon);
		json_object_object_get_ex(v, "name", &name);
		/*
		 * json-c prints the envelope in its own order and spacing, keeps
		 * the original text of doubles and every 64-bit integer exactly.
		 */
		envtext = json_object_to_json_string_ext(env, JSON_C_TO_STRING_SPACED);
		snprintf(what, sizeof(what), "vector %s: canonical", json_object_get_string(name));
		check_canonical(envtext, strlen(envtext), json_object_get_string(canon), what);
		check_canonical(json_object_get_string(canon), json_object_get_string_len(canon),
						json_object_get_string(canon), what);
		/* the same through cj_envelope, with a signature member around */
		{
			struct json_object *withsig = json_object_get(env);

			json_object_object_add(withsig, "signature", json_object_new_string("x=\"1\""));
			envtext = json_object_to_json_string_ext(withsig, JSON_C_TO_STRING_PLAIN);
			snprintf(what, sizeof(what), "vector %s: cj_envelope", json_object_get_string(name));
			CHECK(cj_envelope(envtext, strlen(envtext), &hm, &hm_len, &sig, err, sizeof(err)),
				  "%s: %s", what, err);
			CHECK_STR(hm, json_object_get_string(canon), what);
			CHECK_STR(sig, "x=\"1\"", what);
			json_object_object_del(withsig, "signature");
			json_object_put(withsig);
			free(hm);
			free(sig);
		}
	}
	json_object_put(vectors);
	free(text);
}

static void
hand_cases(void)
{
	for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++)
		check_canonical(good_cases[i][0], strlen(good_cases[i][0]), good_cases[i][1], good_cases[i][0]);
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
	{
		char  err[256] = "";
		char *got = cj_canonicalize(bad_cases[i], strlen(bad_cases[i]), NULL, err, sizeof(err));

		CHECK(got == NULL && err[0] != '\0', "accepted invalid JSON %s", bad_cases[i]);
		free(got);
	}
}

static void
edge_cases(void)
{
	char  buf[32];
	char  deep[2 * (CJ_MAX_DEPTH + 1) + 1];
	char *got;
	char *hm,
		*sig;
	size_t len;
	char   err[128];

	/* NUL inside the text and inside a key */
	check_canonical("{\"a\\u0000b\":1,\"a\":2}", strlen("{\"a\\u0000b\":1,\"a\":2}"), "{\"a\":2,\"a\\u0000b\":1}", "NUL in key");
	got = cj_canonicalize("[1]\0", 4, NULL, err, sizeof(err));
	CHECK(got == NULL, "a raw NUL after the value is extra data");
	free(got);
	/* invalid UTF-8: overlong, encoded surrogate, truncated, > U+10FFFF */
	CHECK(cj_canonicalize("[\"\xC0\xAF\"]", 6, NULL, NULL, 0) == NULL, "overlong");
	CHECK(cj_canonicalize("[\"\xED\xA0\x80\"]", 7, NULL, NULL, 0) == NULL, "encoded surrogate");
	CHECK(cj_canonicalize("[\"\xE4\xB8\"]", 6, NULL, NULL, 0) == NULL, "truncated");
	CHECK(cj_canonicalize("[\"\xF4\x90\x80\x80\"]", 8, NULL, NULL, 0) == NULL, "above U+10FFFF");
	/* nesting: CJ_MAX_DEPTH is fine, one more is refused */
	memset(deep, '[', CJ_MAX_DEPTH);
	memset(deep + CJ_MAX_DEPTH, ']', CJ_MAX_DEPTH);
	deep[2 * CJ_MAX_DEPTH] = '\0';
	got = cj_canonicalize(deep, strlen(deep), NULL, NULL, 0);
	CHECK(got != NULL && strcmp(got, deep) == 0, "depth %d accepted", CJ_MAX_DEPTH);
	free(got);
	memset(deep, '[', CJ_MAX_DEPTH + 1);
	memset(deep + CJ_MAX_DEPTH + 1, ']', CJ_MAX_DEPTH + 1);
	deep[2 * (CJ_MAX_DEPTH + 1)] = '\0';
	got = cj_canonicalize(deep, strlen(deep), NULL, err, sizeof(err));
	CHECK(got == NULL && strstr(err, "deeper") != NULL, "depth %d refused: %s", CJ_MAX_DEPTH + 1, err);
	free(got);
	/* an integer of 4300 digits is Python's limit */
	{
		char *big = malloc(4302);

		memset(big, '7', 4301);
		big[4301] = '\0';
		got = cj_canonicalize(big, 4300, NULL, NULL, 0);
		CHECK(got != NULL && strlen(got) == 4300, "4300-digit integer");
		free(got);
		got = cj_canonicalize(big, 4301, NULL, NULL, 0);
		CHECK(got == NULL, "4301-digit integer refused");
		free(got);
		free(big);
	}
	/* repr of doubles */
	cj_format_double(0.1, buf);
	CHECK_STR(buf, "0.1", "repr 0.1");
	cj_format_double(1e-7, buf);
	CHECK_STR(buf, "1e-07", "repr 1e-07");
	cj_format_double(123456789.125, buf);
	CHECK_STR(buf, "123456789.125", "repr 123456789.125");
	cj_format_double(-2.5e-5, buf);
	CHECK_STR(buf, "-2.5e-05", "repr -2.5e-05");
	cj_format_double(1e100, buf);
	CHECK_STR(buf, "1e+100", "repr 1e+100");
	cj_format_double(9999999999999998.0, buf);
	CHECK_STR(buf, "9999999999999998.0", "repr 9999999999999998.0");
	cj_format_double(2.2250738585072014e-308, buf);
	CHECK_STR(buf, "2.2250738585072014e-308", "repr DBL_MIN");
	/* cj_envelope */
	CHECK(!cj_envelope("[1]", 3, &hm, &len, &sig, NULL, 0), "an array is no envelope");
	CHECK(!cj_envelope("{\"header\":{}}", 13, &hm, &len, &sig, err, sizeof(err)) &&
			  strstr(err, "message") != NULL,
		  "no message: %s", err);
	CHECK(cj_envelope("{\"message\":[],\"header\":{\"b\":1,\"a\":2},\"header\":{\"z\":0},\"signature\":5}", strlen("{\"message\":[],\"header\":{\"b\":1,\"a\":2},\"header\":{\"z\":0},\"signature\":5}"),
					  &hm, &len, &sig, NULL, 0),
		  "duplicate header");
	CHECK_STR(hm, "{\"header\":{\"z\":0},\"message\":[]}", "the last header wins");
	CHECK(sig == NULL, "a non-string signature is none");
	free(hm);
	CHECK(cj_envelope(" {\"header\":1,\"message\":2,\"signature\":\"a\\\"b\\\\c\"} ", strlen(" {\"header\":1,\"message\":2,\"signature\":\"a\\\"b\\\\c\"} "),
					  &hm, &len, &sig, NULL, 0),
		  "signature escapes");
	CHECK_STR(sig, "a\"b\\c", "signature string decoded");
	free(hm);
	free(sig);
	CHECK(!cj_envelope("{\"header\":1,\"message\":2} x", 27, &hm, &len, &sig, NULL, 0), "extra data");
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "test/fixtures/signing";

	fixture_cases(dir);
	vector_cases(dir);
	hand_cases();
	edge_cases();
	return unit_finish("canonical_json_test");
}
