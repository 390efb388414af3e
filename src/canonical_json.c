/*
 * canonical_json.c
 *		The canonical JSON of the DCI signature scheme (README, "Signing").
 *
 * The peer computes json.dumps(json.loads(text), sort_keys=True,
 * separators=(",", ":")) in Python, so this file mirrors Python's json
 * module, parse and print, rule by rule:
 *
 *	- the grammar of Python's scanner, including its extensions NaN,
 *	  Infinity and -Infinity, and its refusals (control characters inside
 *	  strings, invalid UTF-8, anything after the value but whitespace);
 *	- a number without fraction or exponent is an int, printed as its exact
 *	  digits ("-0" is 0); any other number is float(text) printed as repr()
 *	  (shortest round-trip digits, ".0" on integral values, exponent form
 *	  when the decimal exponent is < -4 or >= 16), inf as "Infinity";
 *	- strings are escaped as ensure_ascii does: \" \\ \n \r \t \b \f, any
 *	  other character outside ' '..'~' as \uxxxx (lower-case hex), surrogate
 *	  pairs above U+FFFF; an escaped surrogate pair is joined on input, a
 *	  lone escaped surrogate is kept;
 *	- object keys sorted by code point; of duplicate keys the last one wins.
 *
 * It is a small tokenizer over the raw text rather than json-c, because
 * json-c loses what the canonical form depends on: integers beyond 64 bits
 * (it clamps or converts them), duplicate keys, lone surrogates, and NaN /
 * Infinity.  Strings are held internally as "generalized UTF-8" (lone
 * surrogates encoded like other code points), whose byte order is code
 * point order, so keys sort with memcmp.
 *
 * Each value is written in canonical form as soon as it is parsed; an
 * object's members are then reordered in place.  Strings are read and
 * written by canonical_strings.c, numbers by canonical_numbers.c.  Nesting is bounded by
 * CJ_MAX_DEPTH, so the recursion is too.  Free of PostgreSQL headers.
 */
#include "canonical_json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canonical_parser.h"

typedef struct Member
{
	char  *key; /* generalized UTF-8, malloc'd */
	size_t klen;
	size_t voff; /* canonical value text in the output buffer */
	size_t vlen;
	size_t index; /* order of appearance, for "last wins" */
} Member;

typedef struct Members
{
	Member *m;
	size_t	n;
	size_t	cap;
} Members;

static bool cj_parse_value(Parser *ps, Buf *out);

static void
skip_ws(Parser *ps)
{
	while (ps->p < ps->end &&
		   (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static bool
literal(Parser *ps, const char *word)
{
	size_t n = strlen(word);

	if ((size_t) (ps->end - ps->p) >= n && memcmp(ps->p, word, n) == 0)
	{
		ps->p += n;
		return true;
	}
	return false;
}

/* ---- containers ---- */

static int
member_cmp(const void *a, const void *b)
{
	const Member *x = a;
	const Member *y = b;
	size_t		  n = x->klen < y->klen ? x->klen : y->klen;
	int			  c = memcmp(x->key, y->key, n);

	if (c != 0)
		return c;
	if (x->klen != y->klen)
		return x->klen < y->klen ? -1 : 1;
	return x->index < y->index ? -1 : (x->index > y->index ? 1 : 0);
}

static void
members_free(Members *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		free(ms->m[i].key);
	free(ms->m);
	ms->m = NULL;
	ms->n = ms->cap = 0;
}

/*
 * Parse an object (at '{'): each member's value is written in canonical
 * form to out, and the members are listed in ms (unsorted).
 */
static bool
parse_members(Parser *ps, Buf *out, Members *ms)
{
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '}')
	{
		ps->p++;
		return true;
	}
	for (;;)
	{
		Buf		key = {0};
		Member *m;

		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != '"')
		{
			cj_fail(ps, "expected a property name in double quotes at offset %zu", cj_offset(ps));
			return false;
		}
		if (!cj_parse_string(ps, &key))
		{
			free(key.data);
			return false;
		}
		if (ms->n == ms->cap)
		{
			size_t	cap = ms->cap ? ms->cap * 2 : 8;
			Member *nm = realloc(ms->m, cap * sizeof(Member));

			if (nm == NULL)
			{
				free(key.data);
				cj_fail(ps, "out of memory");
				return false;
			}
			ms->m = nm;
			ms->cap = cap;
		}
		m = &ms->m[ms->n++];
		m->key = key.data ? key.data : strdup("");
		m->klen = key.len;
		m->index = ms->n - 1;
		m->voff = out->len;
		m->vlen = 0;
		if (m->key == NULL)
		{
			ms->n--;
			cj_fail(ps, "out of memory");
			return false;
		}
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != ':')
		{
			cj_fail(ps, "expected ':' at offset %zu", cj_offset(ps));
			return false;
		}
		ps->p++;
		skip_ws(ps);
		if (!cj_parse_value(ps, out))
			return false;
		m = &ms->m[ms->n - 1];
		m->vlen = out->len - m->voff;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',')
		{
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == '}')
		{
			ps->p++;
			return true;
		}
		cj_fail(ps, "expected ',' or '}' at offset %zu", cj_offset(ps));
		return false;
	}
}

/* replace out[from..] (the member values) with the sorted object */
static bool
emit_sorted(Buf *out, size_t from, Members *ms)
{
	Buf	 obj = {0};
	bool first = true;
	bool ok = true;

	if (ms->n > 1)
		qsort(ms->m, ms->n, sizeof(Member), member_cmp);
	ok = cj_buf_putc(&obj, '{');
	for (size_t i = 0; ok && i < ms->n; i++)
	{
		Member *m = &ms->m[i];

		/* of equal keys only the last one (highest index) counts */
		if (i + 1 < ms->n && m->klen == ms->m[i + 1].klen &&
			memcmp(m->key, ms->m[i + 1].key, m->klen) == 0)
			continue;
		if (!first)
			ok = cj_buf_putc(&obj, ',');
		first = false;
		ok = ok && cj_emit_string(&obj, m->key, m->klen) && cj_buf_putc(&obj, ':') &&
			 cj_buf_append(&obj, out->data + m->voff, m->vlen);
	}
	ok = ok && cj_buf_putc(&obj, '}');
	if (ok)
	{
		out->len = from;
		ok = cj_buf_append(out, obj.data, obj.len);
	}
	free(obj.data);
	return ok;
}

/*
 * Long (~125 lines) for a reason: one dispatch on the first character of a
 * value, each case Python's rule for that kind; the cases share the parser
 * state and the depth bound.
 */
static bool
cj_parse_value(Parser *ps, Buf *out)
{
	skip_ws(ps);
	if (ps->p >= ps->end)
	{
		cj_fail(ps, "unexpected end of JSON text");
		return false;
	}
	switch (*ps->p)
	{
		case '{':
		{
			Members ms = {0};
			size_t	from = out->len;
			bool	ok;

			if (++ps->depth > CJ_MAX_DEPTH)
			{
				cj_fail(ps, "JSON nested deeper than %d levels", CJ_MAX_DEPTH);
				return false;
			}
			ok = parse_members(ps, out, &ms);
			if (ok && !emit_sorted(out, from, &ms))
			{
				cj_fail(ps, "out of memory");
				ok = false;
			}
			members_free(&ms);
			ps->depth--;
			return ok;
		}
		case '[':
		{
			if (++ps->depth > CJ_MAX_DEPTH)
			{
				cj_fail(ps, "JSON nested deeper than %d levels", CJ_MAX_DEPTH);
				return false;
			}
			ps->p++;
			if (!cj_buf_putc(out, '['))
				goto oom;
			skip_ws(ps);
			if (ps->p < ps->end && *ps->p == ']')
				ps->p++;
			else
			{
				for (;;)
				{
					if (!cj_parse_value(ps, out))
						return false;
					skip_ws(ps);
					if (ps->p < ps->end && *ps->p == ',')
					{
						ps->p++;
						if (!cj_buf_putc(out, ','))
							goto oom;
						continue;
					}
					if (ps->p < ps->end && *ps->p == ']')
					{
						ps->p++;
						break;
					}
					cj_fail(ps, "expected ',' or ']'");
					return false;
				}
			}
			ps->depth--;
			if (!cj_buf_putc(out, ']'))
				goto oom;
			return true;
		}
		case '"':
		{
			Buf	 s = {0};
			bool ok = cj_parse_string(ps, &s) &&
					  cj_emit_string(out, s.data ? s.data : "", s.len);

			free(s.data);
			if (!ok)
				cj_fail(ps, "out of memory");
			return ok;
		}
		case 'n':
			if (literal(ps, "null"))
				return cj_buf_append(out, "null", 4) || (cj_fail(ps, "out of memory"), false);
			break;
		case 't':
			if (literal(ps, "true"))
				return cj_buf_append(out, "true", 4) || (cj_fail(ps, "out of memory"), false);
			break;
		case 'f':
			if (literal(ps, "false"))
				return cj_buf_append(out, "false", 5) || (cj_fail(ps, "out of memory"), false);
			break;
		case 'N':
			if (literal(ps, "NaN"))
				return cj_buf_append(out, "NaN", 3) || (cj_fail(ps, "out of memory"), false);
			break;
		case 'I':
			if (literal(ps, "Infinity"))
				return cj_buf_append(out, "Infinity", 8) || (cj_fail(ps, "out of memory"), false);
			break;
		case '-':
			if (literal(ps, "-Infinity"))
				return cj_buf_append(out, "-Infinity", 9) || (cj_fail(ps, "out of memory"), false);
			/* FALLTHROUGH */
		default:
			if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
			{
				if (!cj_parse_number(ps, out))
				{
					cj_fail(ps, "out of memory");
					return false;
				}
				return true;
			}
			break;
	}
	cj_fail(ps, "invalid JSON value");
	return false;
oom:
	cj_fail(ps, "out of memory");
	return false;
}

static void
set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

char *
cj_canonicalize(const char *text, size_t len, size_t *out_len, char *err, size_t errlen)
{
	Parser ps = {0};
	Buf	   out = {0};

	ps.base = ps.p = (const unsigned char *) text;
	ps.end = ps.p + len;
	ps.err = err;
	ps.errlen = errlen;
	if (!cj_parse_value(&ps, &out))
	{
		free(out.data);
		return NULL;
	}
	skip_ws(&ps);
	if (ps.p != ps.end)
	{
		free(out.data);
		set_err(err, errlen, "extra data after the JSON value");
		return NULL;
	}
	if (out.data == NULL)
	{
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	if (out_len)
		*out_len = out.len;
	return out.data;
}

/*
 * The string value of a canonical JSON string (our own escaped ASCII text),
 * or NULL when it holds anything a signature field cannot: only ASCII and
 * the simple escapes are decoded.
 */
static char *
unescape_ascii(const char *s, size_t len)
{
	char  *r;
	size_t o = 0;

	if (len < 2 || s[0] != '"' || s[len - 1] != '"')
		return NULL;
	r = malloc(len);
	if (r == NULL)
		return NULL;
	for (size_t i = 1; i < len - 1; i++)
	{
		char c = s[i];

		if (c == '\\')
		{
			c = s[++i];
			switch (c)
			{
				case '"':
				case '\\':
					break;
				case 'n':
					c = '\n';
					break;
				case 't':
					c = '\t';
					break;
				case 'r':
					c = '\r';
					break;
				case 'b':
					c = '\b';
					break;
				case 'f':
					c = '\f';
					break;
				default:
					/* \uxxxx: not in a signature field; refuse it */
					free(r);
					return NULL;
			}
		}
		r[o++] = c;
	}
	r[o] = '\0';
	return r;
}

bool
cj_envelope(const char *text, size_t len, char **hm_canonical, size_t *hm_len,
			char **signature, char *err, size_t errlen)
{
	Parser	ps = {0};
	Buf		out = {0};
	Members ms = {0};
	Member *header = NULL;
	Member *message = NULL;
	Member *sig = NULL;
	Buf		hm = {0};
	bool	ok;

	*hm_canonical = NULL;
	if (signature)
		*signature = NULL;
	ps.base = ps.p = (const unsigned char *) text;
	ps.end = ps.p + len;
	ps.err = err;
	ps.errlen = errlen;
	skip_ws(&ps);
	if (ps.p >= ps.end || *ps.p != '{')
	{
		set_err(err, errlen, "the envelope is not a JSON object");
		return false;
	}
	ps.depth = 1;
	ok = parse_members(&ps, &out, &ms);
	if (ok)
	{
		skip_ws(&ps);
		if (ps.p != ps.end)
		{
			set_err(err, errlen, "extra data after the JSON value");
			ok = false;
		}
	}
	if (ok)
	{
		/* of duplicate keys the last wins */
		for (size_t i = 0; i < ms.n; i++)
		{
			Member *m = &ms.m[i];

			if (m->klen == 6 && memcmp(m->key, "header", 6) == 0)
				header = m;
			else if (m->klen == 7 && memcmp(m->key, "message", 7) == 0)
				message = m;
			else if (m->klen == 9 && memcmp(m->key, "signature", 9) == 0)
				sig = m;
		}
		if (header == NULL || message == NULL)
		{
			set_err(err, errlen, header == NULL ? "the envelope has no \"header\"" : "the envelope has no \"message\"");
			ok = false;
		}
	}
	if (ok)
	{
		ok = cj_buf_append(&hm, "{\"header\":", 10) &&
			 cj_buf_append(&hm, out.data + header->voff, header->vlen) &&
			 cj_buf_append(&hm, ",\"message\":", 11) &&
			 cj_buf_append(&hm, out.data + message->voff, message->vlen) &&
			 cj_buf_putc(&hm, '}');
		if (!ok)
			set_err(err, errlen, "out of memory");
	}
	if (ok && signature && sig != NULL && sig->vlen > 0 && out.data[sig->voff] == '"')
		*signature = unescape_ascii(out.data + sig->voff, sig->vlen);
	members_free(&ms);
	free(out.data);
	if (!ok)
	{
		free(hm.data);
		return false;
	}
	*hm_canonical = hm.data;
	if (hm_len)
		*hm_len = hm.len;
	return true;
}
