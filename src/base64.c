/*
 * base64.c
 *		Base64 and base64url with OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock.
 *
 * OpenSSL's decoder skips surrounding whitespace and accepts non-zero
 * unused bits: the input is checked for its alphabet first, and a JWS part
 * (one spelling only) re-encoded and compared.
 */
#include "base64.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

char *
dci_b64_encode(const unsigned char *data, size_t len, bool url)
{
	char *out;
	int	  n;

	if (len > (size_t) 0x3fffffff)
		return NULL;
	out = malloc(((len + 2) / 3) * 4 + 1);
	if (out == NULL)
		return NULL;
	n = EVP_EncodeBlock((unsigned char *) out, data, (int) len);
	out[n] = '\0';
	if (url)
	{
		for (int i = 0; i < n; i++)
		{
			if (out[i] == '+')
				out[i] = '-';
			else if (out[i] == '/')
				out[i] = '_';
			else if (out[i] == '=')
			{
				out[i] = '\0';
				break;
			}
		}
	}
	return out;
}

static bool
in_alphabet(char c, bool url)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return true;
	return url ? (c == '-' || c == '_') : (c == '+' || c == '/');
}

unsigned char *
dci_b64_decode(const char *s, size_t len, bool url, size_t *out_len)
{
	size_t		   pad = 0;
	size_t		   body = len;
	char		  *std = NULL;
	unsigned char *out = NULL;
	char		  *again = NULL;
	size_t		   stdlen;
	int			   n;

	*out_len = 0;
	if (len > (size_t) 0x3ffffff0)
		return NULL;
	if (!url)
	{
		if (len == 0 || len % 4 != 0)
			return NULL;
		while (pad < 2 && body > 0 && s[body - 1] == '=')
		{
			body--;
			pad++;
		}
	}
	else if (len % 4 == 1)
		return NULL;
	for (size_t i = 0; i < body; i++)
		if (!in_alphabet(s[i], url))
			return NULL;

	/* the standard spelling with padding, as EVP_DecodeBlock wants it */
	if (url)
		pad = (4 - len % 4) % 4;
	stdlen = body + pad;
	std = malloc(stdlen + 1);
	out = malloc(stdlen / 4 * 3 + 1);
	if (std == NULL || out == NULL)
		goto fail;
	for (size_t i = 0; i < body; i++)
		std[i] = url ? (s[i] == '-' ? '+' : s[i] == '_' ? '/'
														: s[i])
					 : s[i];
	memset(std + body, '=', pad);
	std[stdlen] = '\0';
	n = stdlen ? EVP_DecodeBlock(out, (unsigned char *) std, (int) stdlen) : 0;
	if (n < 0 || (size_t) n < pad)
		goto fail;
	n -= (int) pad; /* EVP_DecodeBlock counts the padding as zero bytes */
	out[n] = '\0';

	/*
	 * base64url (JWS) has one text per value: the bytes must encode back to
	 * the same characters.  Standard base64 (DCI signature fields) takes
	 * non-zero unused bits, as Python's decoder does.
	 */
	if (url)
	{
		again = dci_b64_encode(out, n, url);
		if (again == NULL || strlen(again) != len || memcmp(again, s, len) != 0)
			goto fail;
	}
	free(again);
	free(std);
	*out_len = n;
	return out;

fail:
	free(again);
	free(std);
	free(out);
	return NULL;
}
