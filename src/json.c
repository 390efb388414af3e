/*
 * json.c
 *		jsonb in and out: compact wire text, header objects.
 */
#include "dci_client.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "errors.h"
#include "http_headers.h"
#include "json.h"

/*
 * A JSON string literal, as escape_json writes it, but appending runs of
 * characters that need no escaping in one piece (most of a body) and without
 * first copying the string.
 */
static void
append_json_string(StringInfo out, const char *s, int len)
{
	int run = 0;

	appendStringInfoChar(out, '"');
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		appendBinaryStringInfo(out, s + run, i - run);
		run = i + 1;
		switch (c)
		{
			case '"':
				appendStringInfoString(out, "\\\"");
				break;
			case '\\':
				appendStringInfoString(out, "\\\\");
				break;
			case '\b':
				appendStringInfoString(out, "\\b");
				break;
			case '\f':
				appendStringInfoString(out, "\\f");
				break;
			case '\n':
				appendStringInfoString(out, "\\n");
				break;
			case '\r':
				appendStringInfoString(out, "\\r");
				break;
			case '\t':
				appendStringInfoString(out, "\\t");
				break;
			default:
				appendStringInfo(out, "\\u%04x", c);
				break;
		}
	}
	appendBinaryStringInfo(out, s + run, len - run);
	appendStringInfoChar(out, '"');
}

/*
 * Compact JSON text of a jsonb value: what jsonb's own output prints, less
 * the spaces after ':' and ','.  This is the text sent on the wire (and the
 * text a signature is computed over).
 */
char *
dci_jsonb_to_compact(Jsonb *jb, size_t *len)
{
	StringInfoData	   out;
	JsonbIterator	  *it = JsonbIteratorInit(&jb->root);
	JsonbValue		   v;
	JsonbIteratorToken tok;
	bool			   first = true; /* no comma before the next element */

	initStringInfo(&out);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_ARRAY:
				if (v.val.array.rawScalar)
					break; /* a bare scalar: just the value follows */
				if (!first)
					appendStringInfoChar(&out, ',');
				appendStringInfoChar(&out, '[');
				first = true;
				break;
			case WJB_BEGIN_OBJECT:
				if (!first)
					appendStringInfoChar(&out, ',');
				appendStringInfoChar(&out, '{');
				first = true;
				break;
			case WJB_END_ARRAY:
				if (!v.val.array.rawScalar)
					appendStringInfoChar(&out, ']');
				first = false;
				break;
			case WJB_END_OBJECT:
				appendStringInfoChar(&out, '}');
				first = false;
				break;
			case WJB_KEY:
				if (!first)
					appendStringInfoChar(&out, ',');
				append_json_string(&out, v.val.string.val, v.val.string.len);
				appendStringInfoChar(&out, ':');
				first = true; /* the value follows without a comma */
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				if (!first)
					appendStringInfoChar(&out, ',');
				switch (v.type)
				{
					case jbvNull:
						appendStringInfoString(&out, "null");
						break;
					case jbvString:
						append_json_string(&out, v.val.string.val, v.val.string.len);
						break;
					case jbvNumeric:
						appendStringInfoString(&out,
											   DatumGetCString(DirectFunctionCall1(numeric_out,
																				   NumericGetDatum(v.val.numeric))));
						break;
					case jbvBool:
						appendStringInfoString(&out, v.val.boolean ? "true" : "false");
						break;
					default:
						elog(ERROR, "unexpected jsonb value type %d", (int) v.type);
				}
				first = false;
				break;
			default:
				elog(ERROR, "unexpected jsonb iterator token %d", (int) tok);
		}
	}
	if (len)
		*len = out.len;
	return out.data;
}

/*
 * Header names the caller may not set: libcurl and the extension own them,
 * and the hop-by-hop ones would change how the request is framed on a
 * kept-alive or proxied connection.
 */
static bool
reserved_header(const char *name)
{
	static const char *const reserved[] = {
		"authorization",
		"host",
		"content-length",
		"transfer-encoding",
		"connection",
		"upgrade",
		"te",
		"trailer",
		"expect",
		"keep-alive",
	};

	for (int i = 0; i < lengthof(reserved); i++)
		if (pg_strcasecmp(name, reserved[i]) == 0)
			return true;
	return pg_strncasecmp(name, "proxy-", 6) == 0;
}

DciHeaders *
dci_jsonb_to_headers(Jsonb *jb, const char *what)
{
	DciHeaders		  *h = palloc0(sizeof(DciHeaders));
	JsonbIterator	  *it;
	JsonbValue		   v;
	JsonbIteratorToken tok;
	char			  *name = NULL;
	int				   cap;

	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object of header names and string values", what)));
	cap = JB_ROOT_COUNT(jb);
	/* bounded: header merging and the wire must stay small and quick */
	if (cap > DCI_MAX_HEADERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has %d headers; at most %d are allowed", what, cap, DCI_MAX_HEADERS)));
	h->names = palloc0(sizeof(char *) * (cap + 1));
	h->values = palloc0(sizeof(char *) * (cap + 1));

	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		CHECK_FOR_INTERRUPTS();
		if (tok == WJB_KEY)
		{
			if (v.val.string.len > DCI_MAX_HEADER_NAME)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s has a header name longer than %d bytes", what, DCI_MAX_HEADER_NAME)));
			name = pnstrdup(v.val.string.val, v.val.string.len);
			if (!header_name_valid(name))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s has an invalid header name \"%s\"", what,
								dci_quote_text(name, strlen(name))),
						 errdetail("Header names are HTTP tokens: letters, digits and !#$%%&'*+-.^_`|~.")));
			if (reserved_header(name))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s may not set header \"%s\"", what, name),
						 errdetail("Authorization, Host, Content-Length and the hop-by-hop headers (Connection, Transfer-Encoding, Upgrade, TE, Trailer, Expect, Keep-Alive, Proxy-*) are set by dci_client.")));
		}
		else if (tok == WJB_VALUE)
		{
			char *value;

			if (v.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s: the value of header \"%s\" must be a string", what, name)));
			if (v.val.string.len > DCI_MAX_HEADER_VALUE)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s: the value of header \"%s\" is longer than %d bytes", what, name,
								DCI_MAX_HEADER_VALUE)));
			value = pnstrdup(v.val.string.val, v.val.string.len);
			if (!header_value_valid(value) || strlen(value) != v.val.string.len)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s: the value of header \"%s\" contains a control character (carriage return, line feed, NUL, ...)", what, name)));
			h->names[h->n] = name;
			h->values[h->n] = value;
			h->n++;
		}
	}
	return h;
}

/* header text as a valid string of the server encoding: bytes that are not become '?' */
static char *
header_text(const char *s)
{
	int	  len = strlen(s);
	char *copy;
	bool  ascii = true;

	/* header text is nearly always ASCII: no encoding check needed then */
	for (int i = 0; i < len && ascii; i++)
		ascii = (unsigned char) s[i] < 0x80;
	if (ascii || pg_verifymbstr(s, len, true))
		return (char *) s;
	copy = pstrdup(s);
	for (char *p = copy; *p; p++)
		if ((unsigned char) *p >= 0x80)
			*p = '?';
	return copy;
}

Jsonb *
dci_header_list_to_jsonb(const DciHeaderList *headers)
{
	JsonbParseState *state = NULL;
	JsonbValue		*res;

	size_t	n = headers ? headers->n : 0;
	size_t *order = palloc(sizeof(size_t) * (n + 1));

	/*
	 * jsonb keeps keys ordered by length, then bytes; pushed in that order,
	 * the sort at the end finds them presorted.  Names are unique already.
	 */
	for (size_t i = 0; i < n; i++)
	{
		size_t j = i;
		size_t len = strlen(headers->names[i]);

		while (j > 0)
		{
			const char *prev = headers->names[order[j - 1]];
			size_t		plen = strlen(prev);

			if (plen < len || (plen == len && memcmp(prev, headers->names[i], len) < 0))
				break;
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (size_t o = 0; o < n; o++)
	{
		size_t	   i = order[o];
		JsonbValue k;
		JsonbValue v;
		char	  *name = header_text(headers->names[i]);
		char	  *value = header_text(headers->values[i]);

		k.type = jbvString;
		k.val.string.val = name;
		k.val.string.len = strlen(name);
		v.type = jbvString;
		v.val.string.val = value;
		v.val.string.len = strlen(value);
		pushJsonbValue(&state, WJB_KEY, &k);
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}
