/*
 * http_parsers_test.c
 *		Unit tests of the PostgreSQL-free parsers of untrusted input on the
 *		HTTP side: response headers, Content-Type charset, Retry-After, token
 *		endpoint answers, and the allowed_hosts rules.
 */
#include "http_headers.h"
#include "host_rules.h"
#include "token_response.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "unit.h"

static void
feed(DciHeaderList *h, const char *line)
{
	CHECK(header_list_feed(h, line, strlen(line), 65536, 100) == HEADER_OK, "feed %s", line);
}

static void
test_headers(void)
{
	DciHeaderList h;
	char		  buf[64];
	char		  big[300];

	header_list_init(&h);
	feed(&h, "HTTP/1.1 100 Continue\r\n");
	feed(&h, "X-Early: dropped\r\n");
	feed(&h, "\r\n");
	feed(&h, "HTTP/1.1 200 OK\r\n");
	feed(&h, "Content-Type:   application/json; charset=\"ISO-8859-1\"  \r\n");
	feed(&h, "Set-Cookie: a=1\r\n");
	feed(&h, "set-cookie: b=2\r\n");
	feed(&h, "X-Folded: first\r\n");
	feed(&h, "\t second\r\n");
	feed(&h, "not a header line\r\n");
	feed(&h, ": no name\r\n");
	feed(&h, "\r\n");
	CHECK(header_list_get(&h, "x-early") == NULL, "a new status line starts over");
	CHECK_STR(header_list_get(&h, "content-type"), "application/json; charset=\"ISO-8859-1\"", "trimmed value");
	CHECK_STR(header_list_get(&h, "set-cookie"), "a=1, b=2", "repeated headers joined, names lower-cased");
	CHECK_STR(header_list_get(&h, "x-folded"), "first second", "obsolete folding");
	CHECK(h.n == 3, "three headers, got %zu", h.n);
	CHECK(content_type_charset(header_list_get(&h, "content-type"), buf, sizeof(buf)) &&
			  strcmp(buf, "ISO-8859-1") == 0,
		  "quoted charset");
	CHECK(content_type_charset("text/html;charset=utf-8", buf, sizeof(buf)) && strcmp(buf, "utf-8") == 0,
		  "bare charset");
	CHECK(!content_type_charset("application/json", buf, sizeof(buf)), "no charset");
	CHECK(!content_type_charset("a; charset=", buf, sizeof(buf)), "empty charset");
	CHECK(!content_type_charset(NULL, buf, sizeof(buf)), "no header");

	/* limits: bytes and distinct names */
	header_list_clear(&h);
	memset(big, 'x', sizeof(big) - 3);
	memcpy(big, "X-Big: ", 7);
	strcpy(big + sizeof(big) - 3, "\r\n");
	CHECK(header_list_feed(&h, big, strlen(big), 100, 100) == HEADER_TOO_LARGE, "byte limit");
	header_list_clear(&h);
	for (int i = 0; i < 5; i++)
	{
		char line[32];

		snprintf(line, sizeof(line), "X-%d: v\r\n", i);
		CHECK(header_list_feed(&h, line, strlen(line), 65536, 5) == HEADER_OK, "under count limit");
	}
	CHECK(header_list_feed(&h, "X-9: v\r\n", 8, 65536, 5) == HEADER_TOO_LARGE, "count limit");
	header_list_free(&h);

	CHECK(header_name_valid("X-Request-Id"), "token name");
	CHECK(!header_name_valid("X Bad"), "space in name");
	CHECK(!header_name_valid("X:Bad"), "colon in name");
	CHECK(!header_name_valid(""), "empty name");
	CHECK(header_value_valid("a value; with=stuff"), "plain value");
	CHECK(!header_value_valid("a\r\nInjected: 1"), "CRLF in value");
	CHECK(!header_value_valid("a\rb"), "lone CR in value");
	CHECK(!header_value_valid("a\x01b"), "control character in value");
	CHECK(!header_value_valid("a\x7f"), "DEL in value");
	CHECK(header_value_valid("a\tb"), "horizontal tab is allowed");

	CHECK(retry_after_ms("2", 0) == 2000, "delta seconds");
	CHECK(retry_after_ms(" 0", 0) == 0, "zero");
	CHECK(retry_after_ms("-1", 0) == -1, "negative");
	CHECK(retry_after_ms("soon", 0) == -1, "garbage");
	CHECK(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470) == 10000, "HTTP-date");
	CHECK(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490) == 0, "HTTP-date in the past");
}

static void
parse_token(const char *body, TokenResponse *tr, bool want_ok)
{
	CHECK(token_response_parse(body, strlen(body), tr) == want_ok, "parse %s", body);
}

static void
test_token(void)
{
	TokenResponse tr;

	parse_token("{\"access_token\":\"abc\",\"token_type\":\"bearer\",\"expires_in\":36000}", &tr, true);
	CHECK_STR(tr.access_token, "abc", "token");
	CHECK(tr.expires_in == 36000 && tr.expires_in_given, "numeric expires_in");
	token_response_free(&tr);

	parse_token("{\"access_token\":\"abc\",\"expires_in\":\"36000\"}", &tr, true);
	CHECK(tr.expires_in == 36000 && tr.expires_in_given, "string expires_in (the DCI standard's type)");
	token_response_free(&tr);

	parse_token("{\"access_token\":\"abc\"}", &tr, true);
	CHECK(tr.expires_in == TOKEN_DEFAULT_EXPIRES_IN && !tr.expires_in_given, "absent expires_in");
	token_response_free(&tr);

	parse_token("{\"access_token\":\"abc\",\"expires_in\":\"soon\"}", &tr, true);
	CHECK(tr.expires_in == TOKEN_DEFAULT_EXPIRES_IN && !tr.expires_in_given, "unusable expires_in");
	token_response_free(&tr);

	parse_token("{\"access_token\":\"\"}", &tr, true);
	CHECK(tr.access_token == NULL, "empty token is no token");
	token_response_free(&tr);

	parse_token("{\"error\":\"invalid_client\",\"error_description\":\"bad secret\"}", &tr, true);
	CHECK(tr.access_token == NULL, "refusal has no token");
	CHECK_STR(tr.error, "invalid_client", "RFC 6749 error");
	CHECK_STR(tr.error_description, "bad secret", "error_description");
	token_response_free(&tr);

	parse_token("{\"errors\":[{\"code\":\"err.invalid\",\"message\":\"no\"}]}", &tr, true);
	CHECK_STR(tr.error, "err.invalid", "DCI errors[0].code");
	CHECK_STR(tr.error_description, "no", "DCI errors[0].message");
	token_response_free(&tr);

	parse_token("<html>no</html>", &tr, false);
	token_response_free(&tr);
	parse_token("[1,2]", &tr, false);
	token_response_free(&tr);
	parse_token("{\"access_token\":\"abc\"} trailing", &tr, false);
	token_response_free(&tr);
	parse_token("{\"access_token\":\"abc\"}\n", &tr, true);
	token_response_free(&tr);
	{
		/* deep nesting is refused, not recursed into */
		char deep[2100];

		memset(deep, '[', 2000);
		deep[2000] = '\0';
		parse_token(deep, &tr, false);
		token_response_free(&tr);
	}
}

static struct sockaddr_storage
addr(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':'))
	{
		ss.ss_family = AF_INET6;
		inet_pton(AF_INET6, text, &((struct sockaddr_in6 *) &ss)->sin6_addr);
	}
	else
	{
		ss.ss_family = AF_INET;
		inet_pton(AF_INET, text, &((struct sockaddr_in *) &ss)->sin_addr);
	}
	return ss;
}

static bool
allows_addr(const HostRules *r, const char *text)
{
	struct sockaddr_storage ss = addr(text);

	return host_rules_allow_address(r, (struct sockaddr *) &ss);
}

static void
test_hosts(void)
{
	char	   err[256];
	HostRules *r = host_rules_parse("registry.gov.example, *.crvs.example ,10.1.0.0/16, 127.0.0.1, [::1], 2001:db8:1::/48",
									err, sizeof(err));

	CHECK(r != NULL, "parse: %s", err);
	CHECK(host_rules_allow_host(r, "registry.gov.example"), "exact name");
	CHECK(host_rules_allow_host(r, "REGISTRY.gov.example."), "case and trailing dot");
	CHECK(!host_rules_allow_host(r, "evil-registry.gov.example"), "no suffix match for exact names");
	CHECK(host_rules_allow_host(r, "api.crvs.example"), "wildcard");
	CHECK(!host_rules_allow_host(r, "crvs.example"), "wildcard needs a label");
	CHECK(!host_rules_allow_host(r, "crvs.example.evil"), "wildcard is a suffix");
	CHECK(host_rules_allow_host(r, "10.1.2.3"), "IPv4 in range");
	CHECK(!host_rules_allow_host(r, "10.2.0.1"), "IPv4 outside range");
	CHECK(host_rules_allow_host(r, "127.0.0.1"), "single address");
	CHECK(host_rules_allow_host(r, "::1"), "IPv6 literal");
	CHECK(host_rules_allow_host(r, "::ffff:127.0.0.1"), "IPv4-mapped IPv6");
	CHECK(host_rules_allow_host(r, "2001:db8:1::5"), "IPv6 range");

	CHECK(allows_addr(r, "10.1.9.9"), "listed private range");
	CHECK(!allows_addr(r, "10.9.9.9"), "unlisted private address");
	CHECK(!allows_addr(r, "169.254.169.254"), "link-local (cloud metadata)");
	CHECK(!allows_addr(r, "127.0.0.2"), "unlisted loopback");
	CHECK(allows_addr(r, "127.0.0.1"), "listed loopback");
	CHECK(!allows_addr(r, "192.168.1.1"), "RFC 1918");
	CHECK(!allows_addr(r, "100.64.0.1"), "carrier-grade NAT");
	CHECK(!allows_addr(r, "fe80::1"), "IPv6 link-local");
	CHECK(!allows_addr(r, "fd00::1"), "IPv6 unique local");
	CHECK(!allows_addr(r, "::ffff:10.9.9.9"), "IPv4-mapped private");
	CHECK(allows_addr(r, "93.184.216.34"), "public address");
	host_rules_free(r);

	CHECK(host_rules_parse("good.example, bad host", err, sizeof(err)) == NULL, "space in name refused");
	CHECK(host_rules_parse("10.0.0.0/33", err, sizeof(err)) == NULL, "prefix too long");
	CHECK(host_rules_parse("a.*.example", err, sizeof(err)) == NULL, "wildcard only in front");
	r = host_rules_parse("", err, sizeof(err));
	CHECK(r != NULL && !host_rules_allow_host(r, "anything.example"), "empty list allows nothing by itself");
	host_rules_free(r);
	CHECK(host_rules_allow_host(NULL, "anything.example"), "no rules: anything");
}

int
main(int argc, char **argv)
{
	test_headers();
	test_token();
	test_hosts();
	printf("http_parsers: %d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}
