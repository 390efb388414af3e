/*
 * token_response_fuzz.c
 *		libFuzzer target for the token endpoint answer parser: any input is
 *		parsed or refused without crashing, leaking or reading past its end.
 */
#include "token_response.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TokenResponse tr;

	if (token_response_parse((const char *) data, size, &tr))
	{
		if (!isfinite(tr.expires_in) || tr.expires_in < 0)
			abort();
		if (tr.access_token && tr.access_token[0] == '\0')
			abort();
	}
	token_response_free(&tr);
	return 0;
}
