/*
 * path_check_test.c
 *		Unit tests of dci_path_problem: every trick that climbs out of
 *		base_url's path is refused, ordinary API paths are accepted.
 */
#include "path_check.h"

#include "unit.h"

#define DOT	   "has a \"..\" or \".\" segment (also percent-encoded or with \";\" parameters)"
#define SLASH  "has an encoded slash or backslash"
#define BYTES  "has a control character, space, \"#\" or backslash"
#define QUERY  "has a query string"
#define BADPCT "has a malformed percent escape"
#define NUL	   "has an encoded NUL"
#define START  "must start with \"/\""
#define DEEP   "has too many levels of percent-encoding"
#define UTF8   "has an overlong or invalid UTF-8 byte"

/* accepted both with and without a query allowed */
static void
ok(const char *path)
{
	const char *p1 = dci_path_problem(path, false);
	const char *p2 = dci_path_problem(path, true);

	CHECK(p1 == NULL, "%s refused without query: %s", path, p1);
	CHECK(p2 == NULL, "%s refused with query: %s", path, p2);
}

/* refused for this reason both with and without a query allowed */
static void
bad(const char *path, const char *why)
{
	CHECK_STR(dci_path_problem(path, false), why, path);
	CHECK_STR(dci_path_problem(path, true), why, path);
}

static void
test_accepted(void)
{
	ok("/");
	ok("/registry/sync/search");
	ok("/a..b/");
	ok("/..."); /* three dots: a name, not a dot segment */
	ok("/..../x");
	ok("/.../x");
	ok("/x.y/z");
	ok("/.hidden");
	ok("/a.");
	ok("/a;b=c/d");
	ok("/registry//x");
	ok("//");
	ok("/a/");
	ok("/%41%62c"); /* encoded letters are fine */
	ok("/a%20b");	/* an encoded space */
	ok("/a%3fb");	/* an encoded '?' stays in the path */
	ok("/a%23b");
	ok("/100%25");	 /* a literal percent */
	ok("/50%25off"); /* "%of" after one round is literal */
	ok("/%2525");	 /* '%' after two rounds */
	ok("/%252541");	 /* three rounds: "A" */
	ok("/;");		 /* empty segment with params */
	ok("/;../x");	 /* params of an empty segment */
	ok("/a;..");
	ok("/.a.");
	ok("/%2e%2e%2e");	/* decoded "...", accepted like "..." */
	ok("/caf\xc3\xa9"); /* UTF-8 raw */
	ok("/caf%C3%A9");
	ok("/~user/x-y_z");
	ok("/a:b@c!$&'()*+,=");
}

static void
test_dots(void)
{
	bad("/..", DOT);
	bad("/../x", DOT);
	bad("/a/..", DOT);
	bad("/a/../", DOT);
	bad("/.", DOT);
	bad("/./x", DOT);
	bad("/a/./b", DOT);
	bad("/%2e%2e/", DOT);
	bad("/%2E%2E", DOT);
	bad("/%2E./", DOT);
	bad("/.%2e", DOT);
	bad("/%2e", DOT);
	bad("/%252e%252e/", DOT);
	bad("/%25252e/", DOT); /* three rounds */
	bad("/%252E./x", DOT);
	bad("/..;/", DOT);
	bad("/..;jsessionid=1/x", DOT);
	bad("/.;x/y", DOT);
	bad("/..%3b/x", DOT); /* decoded ';' cuts too */
	bad("/..%3B", DOT);
	bad("/%2e%2e%3bx/", DOT);
	bad("/..%253b/", DOT);
	bad("/a/b/c/..", DOT);
}

static void
test_encoded(void)
{
	bad("/..%2f", SLASH);
	bad("/..%2F", SLASH);
	bad("/a%2fb", SLASH);
	bad("/a%5cb", SLASH);
	bad("/a%5Cb", SLASH);
	bad("/a%252fb", SLASH); /* double-encoded */
	bad("/a%252Fb", SLASH);
	bad("/a%25255cb", SLASH); /* triple-encoded */
	bad("/%2e%2e%2f", SLASH);
	bad("/a%00", NUL);
	bad("/a%2500b", NUL);
	bad("/a%", BADPCT);
	bad("/a%2", BADPCT); /* truncated */
	bad("/a%2g", BADPCT);
	bad("/a%%41", BADPCT);
	bad("/%zz", BADPCT);
	bad("/%u002e%u002e/x", BADPCT); /* IIS %u */
	bad("/%25u002e%25u002e/x", BADPCT);
	bad("/%2525252e/", DEEP); /* four rounds to reach "." */
	bad("/%25252541", DEEP);
	bad("/%c0%ae%c0%ae/x", UTF8); /* overlong "." */
	bad("/%C0%AF", UTF8);
	bad("/\xc0\xae\xc0\xae/x", UTF8);
	bad("/%e0%80%ae", UTF8);
	bad("/%f0%80%80%ae", UTF8);
	bad("/%ff", UTF8);
}

static void
test_bytes_and_query(void)
{
	char buf[8];

	bad("", START);
	bad("a/b", START);
	bad("registry", START);
	bad("%2fa", START);
	bad("?x", START);
	CHECK_STR(dci_path_problem(NULL, true), START, "NULL");
	bad("/a b", BYTES);
	bad("/a\tb", BYTES);
	bad("/a\nb", BYTES);
	bad("/a\rb", BYTES);
	bad("/a\x7f", BYTES);
	bad("/a#frag", BYTES);
	bad("/a\\..\\x", BYTES);
	bad("/\\", BYTES);
	for (int c = 1; c <= 0x20; c++)
	{
		snprintf(buf, sizeof(buf), "/a%cb", c);
		bad(buf, BYTES);
	}

	/* the query part */
	CHECK(dci_path_problem("/path?x=../..&y=%2f", true) == NULL, "query may hold anything else");
	CHECK_STR(dci_path_problem("/path?x=../..&y=%2f", false), QUERY, "no query for endpoints");
	CHECK_STR(dci_path_problem("/path?", false), QUERY, "an empty query is still a query");
	CHECK(dci_path_problem("/path?", true) == NULL, "empty query");
	CHECK(dci_path_problem("/?a=%zz&b=%00&c=%5c;..", true) == NULL, "query is not decoded");
	CHECK(dci_path_problem("/a?b?c", true) == NULL, "split at the first '?'");
	CHECK_STR(dci_path_problem("/a?b c", true), BYTES, "space in the query");
	CHECK_STR(dci_path_problem("/a?b#c", true), BYTES, "'#' in the query");
	CHECK_STR(dci_path_problem("/a?b\\c", true), BYTES, "backslash in the query");
	CHECK_STR(dci_path_problem("/a?b\x7f", true), BYTES, "DEL in the query");
	CHECK_STR(dci_path_problem("/../x?y=1", true), DOT, "path part still checked");
	CHECK_STR(dci_path_problem("/..?y=1", true), DOT, "dot segment before '?'");
	CHECK_STR(dci_path_problem("/a%2f?y=1", true), SLASH, "encoded slash before '?'");
	CHECK_STR(dci_path_problem("/a%2?y", true), BADPCT, "truncated escape before '?'");
	CHECK_STR(dci_path_problem("/a b?y", false), BYTES, "bytes reported before the query");
	CHECK_STR(dci_path_problem("?", false), START, "'?' alone");
}

static void
test_long(void)
{
	size_t n = 100000;
	char  *p = malloc(n + 1);

	memset(p, 'a', n);
	for (size_t i = 0; i < n; i += 10)
		p[i] = '/';
	p[n] = '\0';
	CHECK(dci_path_problem(p, false) == NULL, "a long path");
	memcpy(p + n - 3, "/..", 3);
	CHECK_STR(dci_path_problem(p, false), DOT, "a long path ending in ..");
	free(p);
}

int
main(int argc, char **argv)
{
	(void) argc;
	(void) argv;
	test_accepted();
	test_dots();
	test_encoded();
	test_bytes_and_query();
	test_long();
	return unit_finish("path_check");
}
