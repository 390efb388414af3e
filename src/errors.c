/*
 * errors.c
 *		Errors carried out of code that must not raise (libcurl callbacks,
 *		dci_test_connection steps) and raised later with ereport.
 */
#include "dci_client.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "errors.h"

/* a buffer vsnprintf may have cut: never end it inside a character */
static void
clip_to_character(char *buf)
{
	int len = strlen(buf);

	buf[pg_mbcliplen(buf, len, len)] = '\0';
}

void
dci_clip_copy(char *dst, const char *src, size_t size)
{
	int len = strlen(src);

	if (size == 0)
		return;
	len = pg_mbcliplen(src, len, Min(len, (int) size - 1));
	memcpy(dst, src, len);
	dst[len] = '\0';
}

void
dci_error_set(DciError *err, int sqlstate, const char *fmt, ...)
{
	va_list ap;

	if (err->sqlstate != 0)
		return; /* the first failure is the cause */
	err->sqlstate = sqlstate;
	err->detail[0] = '\0';
	err->hint[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	clip_to_character(err->message);
}

void
dci_error_detail(DciError *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
	clip_to_character(err->detail);
}

void
dci_error_hint(DciError *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->hint, sizeof(err->hint), fmt, ap);
	va_end(ap);
	clip_to_character(err->hint);
}

void
dci_error_raise(const DciError *err)
{
	ereport(ERROR,
			(errcode(err->sqlstate ? err->sqlstate : ERRCODE_INTERNAL_ERROR),
			 errmsg_internal("%s", err->message),
			 err->detail[0] ? errdetail_internal("%s", err->detail) : 0,
			 err->hint[0] ? errhint("%s", err->hint) : 0));
	pg_unreachable();
}

char *
dci_error_text(const DciError *err)
{
	if (err->detail[0])
		return psprintf("%s: %s", err->message, err->detail);
	return pstrdup(err->message);
}

char *
dci_quote_text(const char *text, size_t len)
{
	StringInfoData buf;
	size_t		   i = 0;
	int			   chars = 0;

	initStringInfo(&buf);
	if (text == NULL)
		return buf.data;
	while (i < len && text[i] != '\0' && chars < DCI_QUOTE_MAX)
	{
		unsigned char c = (unsigned char) text[i];
		int			  clen;

		if (c < 0x20 || c == 0x7f)
		{
			appendStringInfoChar(&buf, ' ');
			i++;
		}
		else if (c < 0x80)
		{
			appendStringInfoChar(&buf, (char) c);
			i++;
		}
		else
		{
			/* keep whole UTF-8 characters; anything else becomes '?' */
			clen = pg_utf_mblen((const unsigned char *) text + i);
			if (i + clen <= len && pg_utf8_islegal((const unsigned char *) text + i, clen))
			{
				appendBinaryStringInfo(&buf, text + i, clen);
				i += clen;
			}
			else
			{
				appendStringInfoChar(&buf, '?');
				i++;
			}
		}
		chars++;
	}
	if (i < len && text[i] != '\0')
		appendStringInfoString(&buf, "...");
	return buf.data;
}
