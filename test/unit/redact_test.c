/*
 * redact_test.c
 *		Unit tests of credential redaction: every spelling a registry may
 *		echo our token in is found and replaced, other text is left alone.
 */
#include "redact.h"

#include <stdbool.h>
#include <time.h>

#include "unit.h"

static size_t
m(const char *needle, const char *text)
{
	return redact_match(needle, strlen(needle), text, strlen(text));
}

/* text redacted with needle(s); "(none)" when nothing matched */
static char result[4096];

static const char *
red2(const char *n1, const char *n2, const char *text)
{
	RedactNeedle nd[2] = {{n1, n1 ? strlen(n1) : 0}, {n2, n2 ? strlen(n2) : 0}};
	char		*out = (char *) "junk";
	size_t		 outlen = 99;
	int			 rc = redact_text(nd, n2 ? 2 : 1, text, strlen(text), &out, &outlen, NULL);

	if (rc == 0)
	{
		CHECK(out == NULL && outlen == 0, "rc 0 leaves no output");
		return "(none)";
	}
	CHECK(rc == 1 && out != NULL, "rc %d", rc);
	if (rc != 1 || out == NULL)
		return "(error)";
	CHECK(strlen(out) == outlen, "outlen %zu", outlen);
	snprintf(result, sizeof(result), "%s", out);
	free(out);
	return result;
}

static const char *
red(const char *needle, const char *text)
{
	return red2(needle, NULL, text);
}

static void
test_match(void)
{
	/* raw, and what is left after the match is not consumed */
	CHECK(m("tok-abc123", "tok-abc123") == 10, "raw");
	CHECK(m("tok-abc123", "tok-abc123\"}") == 10, "raw, text goes on");
	CHECK(m("tok-abc123", "tok-abc12") == 0, "truncated text");
	CHECK(m("tok-abc123", "xtok-abc123") == 0, "anchored at text[0]");
	CHECK(m("tok-abc123", "TOK-abc123") == 0, "case matters in the needle");
	CHECK(m("tok", "") == 0, "empty text");
	CHECK(redact_match("", 0, "abc", 3) == 0, "empty needle");
	CHECK(redact_match(NULL, 4, "abcd", 4) == 0, "NULL needle");

	/* percent */
	CHECK(m("tok-abc", "tok%2Dabc") == 9, "%%2D");
	CHECK(m("tok-abc", "tok%2dabc") == 9, "%%2d");
	CHECK(m("tok-abc", "%74%6F%6b%2d%61%62%63") == 21, "all %%XX");
	CHECK(m("tok-abc", "tok%2") == 0, "trailing %%2");
	CHECK(m("tok-abc", "tok%") == 0, "trailing %%");
	CHECK(m("tok-abc", "tok%2xabc") == 0, "bad hex");
	CHECK(m("tok-abc", "tok%2Eabc") == 0, "wrong byte");
	CHECK(m("a b c", "a+b%20c") == 7, "'+' and %%20 for a space");
	CHECK(m("a+b c", "a+b+c") == 5, "raw '+' for '+', '+' for a space");
	CHECK(m("a+b c", "a%2Bb c") == 7, "%%2B for '+'");
	CHECK(m("a b", "a\\u0020b") == 8, "\\u0020 for a space");
	CHECK(m("ab+c", "ab c") == 0, "a space is not '+'");

	/* JSON */
	CHECK(m("tok", "\\u0074\\u006f\\u006b") == 18, "\\u");
	CHECK(m("tok", "\\u0074\\u006F\\u006B") == 18, "\\u upper hex");
	CHECK(m("tok", "t\\u006fk") == 8, "mixed");
	CHECK(m("tok", "\\u0074\\u006f\\u006") == 0, "truncated \\u");
	CHECK(m("tok", "to\\u00") == 0, "trailing \\u00");
	CHECK(m("tok", "to\\") == 0, "trailing backslash");
	CHECK(m("tok", "to\\u006g") == 0, "bad \\u hex");
	CHECK(m("a/b", "a\\/b") == 4, "\\/");
	CHECK(m("a\"b", "a\\\"b") == 4, "\\\"");
	CHECK(m("a\\b", "a\\\\b") == 4, "\\\\");
	CHECK(m("a\\b", "a\\b") == 3, "raw backslash");
	CHECK(m("a\\b", "a\\u005cb") == 8, "\\u005c");
	CHECK(m("a\\b", "a%5Cb") == 5, "%%5C");
	CHECK(m("a\b\f\n\r\tz", "a\\b\\f\\n\\r\\tz") == 12, "\\b \\f \\n \\r \\t");
	CHECK(m("a\nb", "a\\u000ab") == 8, "\\u000a");
	CHECK(m("a/b", "a\\xb") == 0, "unknown escape");
	CHECK(m("a%b", "a%b") == 3, "raw '%%'");
	CHECK(m("a%b", "a%25b") == 5, "%%25");
	CHECK(m("a%25b", "a%25b") == 5, "a needle holding %%25, raw");
	CHECK(m("a%25b", "a%2525b") == 7, "a needle holding %%25, encoded");
	CHECK(m("a%25", "a%2525") == 6, "two readings (\"a%%25\" raw, or '%%' as %%25): the longest");
	CHECK(m("a%25", "a%25") == 4, "one reading fits");

	/* UTF-8 */
	CHECK(m("caf\xc3\xa9", "caf\\u00e9") == 9, "\\u00e9 for a 2-byte character");
	CHECK(m("caf\xc3\xa9", "caf\\u00E9") == 9, "upper hex");
	CHECK(m("caf\xc3\xa9", "caf%C3%A9") == 9, "its bytes as %%XX");
	CHECK(m("caf\xc3\xa9", "caf%c3\xa9") == 7, "one byte encoded, one raw");
	CHECK(m("caf\xc3\xa9", "caf\\u00c3\\u00a9") == 0, "each byte as \\u00XX is another text");
	CHECK(m("\xe2\x82\xac!", "\\u20ac!") == 7, "3-byte character");
	CHECK(m("x\xf0\x9f\x98\x80y", "x\\uD83D\\uDE00y") == 14, "surrogate pair");
	CHECK(m("x\xf0\x9f\x98\x80y", "x\\ud83d\\ude00y") == 14, "surrogate pair, lower hex");
	CHECK(m("x\xf0\x9f\x98\x80y", "x\\uD83Dy") == 0, "lone high surrogate");
	CHECK(m("x\xf0\x9f\x98\x80y", "x\\uD83D\\u0041y") == 0, "high surrogate and a non-surrogate");
	CHECK(m("x\xf0\x9f\x98\x80y", "x\\uDE00\\uD83Dy") == 0, "reversed pair");
	CHECK(m("x\xf0\x9f\x98\x80y", "x\\uD83D\\uDE0") == 0, "truncated pair");
	CHECK(m("x\xed\xb8\x80y", "x\\uDE00y") == 0, "lone low surrogate spells nothing");
	CHECK(m("x\xf0\x9f\x98\x80y", "x%F0%9F%98%80y") == 14, "4-byte character as %%XX");
}

static void
test_redact(void)
{
	char big[600];

	CHECK_STR(red("tok-abc123", "{\"Authorization\": \"Bearer tok-abc123\"}"),
			  "{\"Authorization\": \"Bearer [redacted]\"}", "echoed header");
	CHECK_STR(red("tok-abc123", "{\"token\": \"\\u0074\\u006f\\u006b\\u002d\\u0061\\u0062\\u0063\\u0031\\u0032\\u0033\"}"),
			  "{\"token\": \"[redacted]\"}", "fully \\u-escaped");
	CHECK_STR(red("tok-abc123", "q=tok%2Dabc123&x=1"), "q=[redacted]&x=1", "URL-encoded");
	CHECK_STR(red("tok-abc123", "a \\u0074ok%2dab\\u0063123 b"), "a [redacted] b", "mixed");
	CHECK_STR(red("tok-abc123", "tok-abc12"), "(none)", "a prefix is not redacted");
	CHECK_STR(red("tok-abc123", "no secret here"), "(none)", "no match: no copy");

	/* base64 with '+', '/' and '=' */
	CHECK_STR(red("a+b/c=", "{\"basic\":\"a+b\\/c=\"}"), "{\"basic\":\"[redacted]\"}", "\\/ for '/'");
	CHECK_STR(red("a+b/c=", "x=a%2Bb%2Fc%3D"), "x=[redacted]", "base64 URL-encoded");
	CHECK_STR(red("a+b/c=", "a+b/c="), "[redacted]", "base64 raw");
	CHECK_STR(red("YWxhZGRpbjpvcGVuc2VzYW1l", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"), "Basic [redacted]", "Basic");

	/* positions */
	CHECK_STR(red("abcd", "abcd"), "[redacted]", "the whole text");
	CHECK_STR(red("abcd", "abcdx"), "[redacted]x", "at the start");
	CHECK_STR(red("abcd", "xabcd"), "x[redacted]", "at the end");
	CHECK_STR(red("abcd", "abcdabcd"), "[redacted][redacted]", "back to back");
	CHECK_STR(red("abab", "ababab"), "[redacted]ab", "overlapping: leftmost, then after it");
	CHECK_STR(red("aaaa", "aaaaaaaaa"), "[redacted][redacted]a", "overlapping runs");
	CHECK_STR(red("abcd", "x abcd y abcd z"), "x [redacted] y [redacted] z", "two occurrences");
	CHECK_STR(red("abcd", "abc"), "(none)", "text shorter than the needle");
	CHECK_STR(red("abcd", ""), "(none)", "empty text");

	/* two needles; at one position the longest */
	CHECK_STR(red2("secret1", "tok-xyz", "s=secret1&t=tok-xyz"), "s=[redacted]&t=[redacted]", "two needles");
	CHECK_STR(red2("abcd", "abcdef", "xabcdefx"), "x[redacted]x", "longest at one position");
	CHECK_STR(red2("abcdef", "abcd", "xabcdefx"), "x[redacted]x", "longest, either order");
	CHECK_STR(red2("abcdef", "cdefgh", "abcdefgh"), "[redacted]gh", "leftmost first");

	/* skipped needles */
	CHECK_STR(red("abc", "abc abc"), "(none)", "needle under REDACT_MIN_LEN");
	CHECK_STR(red2(NULL, "abcd", "abcd"), "[redacted]", "a NULL needle is skipped");
	CHECK_STR(red2("", "abc", "abc"), "(none)", "only short needles");
	{
		char  *out = (char *) "junk";
		size_t outlen = 5;

		CHECK(redact_text(NULL, 0, "abcd", 4, &out, &outlen, NULL) == 0 && out == NULL, "no needles");
	}

	/* needles with '%' and '\\': every reading */
	CHECK_STR(red("p%25w", "a p%25w b"), "a [redacted] b", "needle with %%25, raw");
	CHECK_STR(red("p%25w", "a p%2525w b"), "a [redacted] b", "needle with %%25, encoded");
	CHECK_STR(red("p\\w\"x", "{\"s\":\"p\\\\w\\\"x\"}"), "{\"s\":\"[redacted]\"}", "needle with '\\\\' and '\"'");
	CHECK_STR(red("%%%%", "x%25%%25%y"), "x[redacted]y", "needle of '%%' only");
	CHECK_STR(red("\\\\\\\\", "\\\\\\\\\\\\\\\\"), "[redacted]", "needle of backslashes, JSON-escaped");

	/* a needle over 2048 bytes holding '%': its bitsets are malloc'd */
	{
		size_t		 n = 3000;
		char		*nd = malloc(n + 1);
		char		*text = malloc(n + 3 + 4);
		RedactNeedle rn = {nd, n};
		char		*out;
		size_t		 outlen;

		memset(nd, 'k', n);
		nd[n] = '\0';
		nd[1500] = '%';
		memcpy(text, "<", 1);
		memcpy(text + 1, nd, 1500);
		memcpy(text + 1501, "%25", 3);
		memcpy(text + 1504, nd + 1501, n - 1501);
		memcpy(text + n + 3, ">", 2);
		CHECK(redact_match(nd, n, text + 1, n + 2) == n + 2, "long ambiguous needle, encoded '%%'");
		CHECK(redact_match(nd, n, text + 1, n + 1) == 0, "long ambiguous needle, cut short");
		CHECK(redact_text(&rn, 1, text, n + 4, &out, &outlen, NULL) == 1 && strcmp(out, "<" REDACT_MARK ">") == 0,
			  "long ambiguous needle redacted");
		free(out);
		free(nd);
		free(text);
	}

	/* NUL bytes in text */
	{
		RedactNeedle nd = {"abcd", 4};
		char		*out;
		size_t		 outlen;

		CHECK(redact_text(&nd, 1, "x\0abcd\0y", 8, &out, &outlen, NULL) == 1 && outlen == 14 &&
				  memcmp(out, "x\0[redacted]\0y", 15) == 0,
			  "NUL bytes kept");
		free(out);
	}

	/* many matches: the output grows past its first guess */
	for (size_t i = 0; i + 4 < sizeof(big); i += 4)
		memcpy(big + i, "abcd", 4);
	big[sizeof(big) - 4] = '\0';
	{
		RedactNeedle nd = {"abcd", 4};
		char		*out;
		size_t		 outlen;
		size_t		 n = strlen(big) / 4;
		bool		 all = true;

		CHECK(redact_text(&nd, 1, big, strlen(big), &out, &outlen, NULL) == 1 &&
				  outlen == n * strlen(REDACT_MARK),
			  "%zu marks", n);
		for (size_t i = 0; i < n && all; i++)
			all = memcmp(out + i * strlen(REDACT_MARK), REDACT_MARK, strlen(REDACT_MARK)) == 0;
		CHECK(all && out[outlen] == '\0', "all marks");
		free(out);
	}
}

static void
test_big(void)
{
	size_t		 len = (size_t) 16 << 20;
	char		*body = malloc(len + 1);
	RedactNeedle nd[3] = {{"eyJhbGciOiJSUzI1NiJ9.tok", 24}, {"s3cr%t\\x", 8}, {"Y2xpZW50OnNlY3JldA==", 20}};
	char		*out;
	size_t		 outlen;
	clock_t		 t0;
	double		 secs;

	/* JSON-ish, with escapes and percent signs, no match */
	for (size_t i = 0; i < len; i++)
		body[i] = "{\"name\": \"x y\\n\", \"v\": 12%, \"e\": \"eyJhbGciOiJ\"}, "[i % 50];
	body[len] = '\0';
	t0 = clock();
	CHECK(redact_text(nd, 3, body, len, &out, &outlen, NULL) == 0 && out == NULL, "16 MB, no match");
	secs = (double) (clock() - t0) / CLOCKS_PER_SEC;
	CHECK(secs < 2.0, "16 MB with candidates in %.2f s", secs);

	/* JWT-sized needles, one with '%' (the slower reading), a candidate every other byte */
	{
		char		*jwt = malloc(1500);
		char		*pct = malloc(1500);
		RedactNeedle big[4] = {{jwt, 1500}, {pct, 1500}, {jwt + 1, 1499}, {pct + 1, 1499}};

		memset(jwt, 'e', 1500);
		memcpy(jwt, "eyJ", 3);
		memset(pct, 'q', 1500);
		pct[0] = ' ';
		pct[700] = '%';
		for (size_t i = 0; i < len; i++)
			body[i] = "ab\\n%20 \\u0065yJ+x"[i % 18];
		t0 = clock();
		CHECK(redact_text(big, 4, body, len, &out, &outlen, NULL) == 0, "16 MB of near misses");
		secs = (double) (clock() - t0) / CLOCKS_PER_SEC;
		CHECK(secs < 3.0, "16 MB of near misses with 1.5 KB needles in %.2f s", secs);
		free(jwt);
		free(pct);
	}

	memset(body, 'x', len);
	t0 = clock();
	CHECK(redact_text(nd, 3, body, len, &out, &outlen, NULL) == 0, "16 MB plain");
	secs = (double) (clock() - t0) / CLOCKS_PER_SEC;
	CHECK(secs < 1.0, "16 MB plain in %.2f s", secs);

	memcpy(body + len - 20, "Y2xpZW50OnNlY3JldA==", 20);
	memcpy(body, "s3cr%25t\\\\x", 11);
	CHECK(redact_text(nd, 3, body, len, &out, &outlen, NULL) == 1 &&
			  outlen == len - 31 + 2 * strlen(REDACT_MARK) &&
			  memcmp(out, REDACT_MARK "xxx", strlen(REDACT_MARK) + 3) == 0 &&
			  memcmp(out + outlen - strlen(REDACT_MARK) - 3, "xxx" REDACT_MARK, strlen(REDACT_MARK) + 3) == 0,
		  "16 MB, matches at both ends");
	free(out);
	free(body);
}

static int stop_calls = 0;

static bool
stop_now(void)
{
	stop_calls++;
	return true;
}

static bool
never_stop(void)
{
	stop_calls++;
	return false;
}

/* a hostile text (a needle's near misses everywhere) is stopped when the caller asks */
static void
test_stop(void)
{
	size_t		 nlen = 4001;
	size_t		 len = 1024 * 1024;
	char		*needle = malloc(nlen + 1);
	char		*body = malloc(len + 1);
	RedactNeedle nd;
	char		*out = NULL;
	size_t		 outlen;

	memset(needle, 'a', nlen - 1);
	needle[nlen - 1] = 'b';
	needle[nlen] = '\0';
	memset(body, 'a', len);
	body[len] = '\0';
	nd.s = needle;
	nd.len = nlen;
	CHECK(redact_text(&nd, 1, body, len, &out, &outlen, stop_now) == -2 && out == NULL && stop_calls == 1,
		  "stopped at the first check (%d calls)", stop_calls);
	stop_calls = 0;
	CHECK(redact_text(&nd, 1, body, 64 * 1024, &out, &outlen, never_stop) == 0 && stop_calls > 0,
		  "asked and went on (%d calls)", stop_calls);
	free(needle);
	free(body);
}

int
main(int argc, char **argv)
{
	(void) argc;
	(void) argv;
	test_match();
	test_redact();
	test_big();
	test_stop();
	return unit_finish("redact");
}
