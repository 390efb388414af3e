/*
 * headers_fuzz.c
 *		libFuzzer target for response header collection as libcurl delivers
 *		it (one line per call), the charset and Retry-After parsers and the
 *		allowed_hosts parser: no crash, no overread, limits respected.
 */
#include "http_headers.h"
#include "host_rules.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	DciHeaderList h;
	size_t		  start = 0;
	char		 *text = malloc(size + 1);
	char		  charset[64];
	char		  err[256];
	HostRules	 *rules;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	header_list_init(&h);
	for (size_t i = 0; i <= size; i++)
	{
		if (i == size || data[i] == '\n')
		{
			size_t len = i - start + (i < size ? 1 : 0);

			if (header_list_feed(&h, (const char *) data + start, len, 4096, 50) != HEADER_OK)
				break;
			start = i + 1;
		}
	}
	if (h.n > 50)
		abort();
	for (size_t i = 0; i < h.n; i++)
	{
		const char *v = header_list_get(&h, h.names[i]);

		if (v == NULL)
			abort();
		(void) content_type_charset(v, charset, sizeof(charset));
		(void) retry_after_ms(v, 0);
	}
	header_list_free(&h);

	rules = host_rules_parse(text, err, sizeof(err));
	if (rules)
	{
		(void) host_rules_allow_host(rules, "a.example");
		(void) host_rules_allow_host(rules, "10.0.0.1");
		host_rules_free(rules);
	}
	free(text);
	return 0;
}
