/*
 * redact.c
 *		Encoding-aware matching of credentials in registry text.
 *
 * A needle is matched one "step" at a time: a text token (a raw byte, '+',
 * %XX, a JSON escape) spells one needle byte, or, for \uXXXX and surrogate
 * pairs, a whole UTF-8 character.  For a needle without '%' or '\\' at most
 * one step fits at any point, so matching is a plain loop.  A needle holding
 * either can be read two ways ("%25" is '%' or the three bytes "%25"), so it
 * is matched by following every reading at once: a ring of bitsets of needle
 * positions, one per text offset ahead (steps are at most 12 bytes), without
 * recursion or backtracking.
 *
 * redact_text skips bytes that cannot start a match with a 256-entry table,
 * so a body with no '%', '\\' and no needle's first byte costs one table
 * lookup per byte.
 */
#include "redact.h"

#include "hex.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RING		  16 /* > the longest step, a surrogate pair (12) */
#define MAX_STEPS	  3	 /* a raw byte, and at most one escape */
#define STACK_WORDS	  32 /* bitset words per slot kept on the stack */
#define STACK_NEEDLES 16 /* needles prepared on the stack */

typedef struct Step
{
	size_t dn; /* needle bytes spelled */
	size_t dt; /* text bytes used */
} Step;

/* the reading of an ambiguous needle: RING bitsets of nwords words */
typedef struct Ring
{
	size_t	  nwords;
	uint64_t *bits;
	size_t	  lo[RING]; /* words that may be non-zero; lo > hi: none */
	size_t	  hi[RING];
} Ring;

/* four hex digits at t (4 bytes available), or -1 */
static long
hex4(const unsigned char *t)
{
	long v = 0;

	for (int k = 0; k < 4; k++)
	{
		int h = dci_hex_value(t[k]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* the byte a two-character JSON escape \e stands for, or -1 (\u is not one) */
static int
json_escape(unsigned char e)
{
	switch (e)
	{
		case '"':
		case '\\':
		case '/':
			return e;
		case 'b':
			return '\b';
		case 'f':
			return '\f';
		case 'n':
			return '\n';
		case 'r':
			return '\r';
		case 't':
			return '\t';
		default:
			return -1;
	}
}

static size_t
utf8_encode(long cp, unsigned char *u)
{
	if (cp < 0x80)
	{
		u[0] = (unsigned char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		u[0] = (unsigned char) (0xC0 | (cp >> 6));
		u[1] = (unsigned char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		u[0] = (unsigned char) (0xE0 | (cp >> 12));
		u[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
		u[2] = (unsigned char) (0x80 | (cp & 0x3F));
		return 3;
	}
	u[0] = (unsigned char) (0xF0 | (cp >> 18));
	u[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
	u[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
	u[3] = (unsigned char) (0x80 | (cp & 0x3F));
	return 4;
}

/*
 * The steps by which t[j..] spells needle bytes from nd[i] on (i < nlen,
 * j < tlen); returns how many, filling out.
 */
static int
steps(const unsigned char *nd, size_t nlen, size_t i,
	  const unsigned char *t, size_t tlen, size_t j, Step *out)
{
	int			  k = 0;
	unsigned char c = nd[i];
	unsigned char b = t[j];

	if (b == c || (b == '+' && c == ' '))
		out[k++] = (Step){1, 1};
	if (b == '%')
	{
		if (j + 2 < tlen && dci_hex_value(t[j + 1]) >= 0 && dci_hex_value(t[j + 2]) >= 0 &&
			dci_hex_value(t[j + 1]) * 16 + dci_hex_value(t[j + 2]) == c)
			out[k++] = (Step){1, 3};
	}
	else if (b == '\\' && j + 1 < tlen)
	{
		if (t[j + 1] != 'u')
		{
			if (json_escape(t[j + 1]) == c)
				out[k++] = (Step){1, 2};
		}
		else if (j + 6 <= tlen)
		{
			long		  cp = hex4(t + j + 2);
			size_t		  dt = 6;
			unsigned char u[4];
			size_t		  ulen;

			if (cp >= 0xD800 && cp <= 0xDBFF)
			{
				long low = -1;

				if (j + 12 <= tlen && t[j + 6] == '\\' && t[j + 7] == 'u')
					low = hex4(t + j + 8);
				if (low < 0xDC00 || low > 0xDFFF)
					return k; /* a lone high surrogate spells no bytes */
				cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
				dt = 12;
			}
			else if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
				return k;
			ulen = utf8_encode(cp, u);
			if (ulen <= nlen - i && memcmp(u, nd + i, ulen) == 0)
				out[k++] = (Step){ulen, dt};
		}
	}
	return k;
}

/* a needle that can be read more than one way at some point */
static bool
ambiguous(const unsigned char *nd, size_t nlen)
{
	return memchr(nd, '%', nlen) != NULL || memchr(nd, '\\', nlen) != NULL;
}

/* at most one step fits at each point: follow it */
static size_t
match_single(const unsigned char *nd, size_t nlen, const unsigned char *t, size_t tlen)
{
	size_t i = 0;
	size_t j = 0;
	Step   s[MAX_STEPS];

	while (i < nlen)
	{
		if (j >= tlen || steps(nd, nlen, i, t, tlen, j, s) == 0)
			return 0;
		i += s[0].dn;
		j += s[0].dt;
	}
	return j;
}

static void
ring_init(Ring *r, size_t nwords, uint64_t *bits)
{
	r->nwords = nwords;
	r->bits = bits;
	memset(bits, 0, RING * nwords * sizeof(uint64_t));
	for (int s = 0; s < RING; s++)
	{
		r->lo[s] = SIZE_MAX;
		r->hi[s] = 0;
	}
}

/* add needle position i to slot s; false when it was there already */
static bool
ring_add(Ring *r, int s, size_t i)
{
	size_t	  w = i / 64;
	uint64_t  bit = (uint64_t) 1 << (i % 64);
	uint64_t *word = &r->bits[s * r->nwords + w];

	if (*word & bit)
		return false;
	*word |= bit;
	if (w < r->lo[s])
		r->lo[s] = w;
	if (w > r->hi[s])
		r->hi[s] = w;
	return true;
}

static int
lowest_bit(uint64_t v)
{
#if defined(__GNUC__) || defined(__clang__)
	return __builtin_ctzll(v);
#else
	int n = 0;

	while ((v & 1) == 0)
	{
		v >>= 1;
		n++;
	}
	return n;
#endif
}

/*
 * Every reading at once, text offset by text offset; the ring is left
 * empty again for the next call.
 */
static size_t
match_all(const unsigned char *nd, size_t nlen, const unsigned char *t, size_t tlen, Ring *r)
{
	size_t best = 0;
	size_t active = 1;

	ring_add(r, 0, 0);
	for (size_t j = 0; active > 0; j++)
	{
		int s = j % RING;

		if (r->lo[s] > r->hi[s])
			continue;
		for (size_t w = r->lo[s]; w <= r->hi[s]; w++)
		{
			uint64_t *word = &r->bits[s * r->nwords + w];
			uint64_t  bits = *word;

			*word = 0;
			while (bits != 0)
			{
				size_t i = w * 64 + lowest_bit(bits);
				Step   st[MAX_STEPS];
				int	   n = j < tlen ? steps(nd, nlen, i, t, tlen, j, st) : 0;

				bits &= bits - 1;
				active--;
				for (int k = 0; k < n; k++)
				{
					size_t ni = i + st[k].dn;
					size_t nj = j + st[k].dt;

					if (ni == nlen)
					{
						if (nj > best)
							best = nj;
					}
					else if (ring_add(r, nj % RING, ni))
						active++;
				}
			}
		}
		r->lo[s] = SIZE_MAX;
		r->hi[s] = 0;
	}
	return best;
}

size_t
redact_match(const char *needle, size_t nlen, const char *text, size_t tlen)
{
	const unsigned char *nd = (const unsigned char *) needle;
	uint64_t			 stack_bits[RING * STACK_WORDS];
	uint64_t			*bits = stack_bits;
	size_t				 nwords = (nlen + 63) / 64;
	Ring				 r;
	Step				 first[MAX_STEPS];
	size_t				 m;

	if (needle == NULL || nlen == 0 || tlen == 0)
		return 0;
	if (!ambiguous(nd, nlen))
		return match_single(nd, nlen, (const unsigned char *) text, tlen);
	/* most positions fail at once: spare them the ring */
	if (steps(nd, nlen, 0, (const unsigned char *) text, tlen, 0, first) == 0)
		return 0;
	if (nwords > STACK_WORDS)
	{
		bits = malloc(RING * nwords * sizeof(uint64_t));
		if (bits == NULL)
			return 0;
	}
	ring_init(&r, nwords, bits);
	m = match_all(nd, nlen, (const unsigned char *) text, tlen, &r);
	if (bits != stack_bits)
		free(bits);
	return m;
}

/* a usable needle, with whether it needs match_all */
typedef struct Prepared
{
	const unsigned char *s;
	size_t				 len;
	bool				 ambiguous;
} Prepared;

/* the output, built only once a first match is found */
typedef struct OutBuf
{
	char  *p;
	size_t len;
	size_t cap;
} OutBuf;

static bool
out_append(OutBuf *o, const char *s, size_t n)
{
	if (n >= SIZE_MAX - o->len)
		return false;
	if (o->len + n + 1 > o->cap)
	{
		size_t cap = o->cap > SIZE_MAX / 2 ? SIZE_MAX : o->cap * 2;
		char  *p;

		if (cap < o->len + n + 1)
			cap = o->len + n + 1;
		p = realloc(o->p, cap);
		if (p == NULL)
			return false;
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	return true;
}

/*
 * Long (~130 lines) for a reason: one pass over the text with the needles'
 * state (candidate table, the shared bitset ring, the output) in locals;
 * split, that state would have to travel between the pieces.
 */
int
redact_text(const RedactNeedle *needles, int nneedles, const char *text, size_t len,
			char **out, size_t *outlen, bool (*stop)(void))
{
	size_t				 work = 0; /* needle bytes tried since the last stop() */
	const unsigned char *t = (const unsigned char *) text;
	bool				 cand[256] = {false};
	Prepared			 stack_prep[STACK_NEEDLES];
	Prepared			*prep = stack_prep;
	int					 nprep = 0;
	size_t				 nwords = 0;
	uint64_t			 stack_bits[RING * STACK_WORDS];
	uint64_t			*bits = stack_bits;
	Ring				 r;
	OutBuf				 o = {NULL, 0, 0};
	size_t				 copied = 0;
	int					 rc = 0;

	*out = NULL;
	*outlen = 0;
	if (text == NULL || len == 0 || needles == NULL || nneedles <= 0)
		return 0;
	if (nneedles > STACK_NEEDLES)
	{
		prep = malloc(nneedles * sizeof(Prepared));
		if (prep == NULL)
			return -1;
	}
	for (int k = 0; k < nneedles; k++)
	{
		const unsigned char *nd = (const unsigned char *) needles[k].s;
		size_t				 nlen = needles[k].len;

		if (nd == NULL || nlen < REDACT_MIN_LEN)
			continue;
		prep[nprep].s = nd;
		prep[nprep].len = nlen;
		prep[nprep].ambiguous = ambiguous(nd, nlen);
		if (prep[nprep].ambiguous && (nlen + 63) / 64 > nwords)
			nwords = (nlen + 63) / 64;
		nprep++;
		cand[nd[0]] = true;
		if (nd[0] == ' ')
			cand['+'] = true;
	}
	cand['%'] = true;
	cand['\\'] = true;

	/* one ring for all ambiguous needles: it is empty after each match */
	if (nwords > STACK_WORDS)
	{
		bits = malloc(RING * nwords * sizeof(uint64_t));
		if (bits == NULL)
		{
			if (prep != stack_prep)
				free(prep);
			return -1;
		}
	}
	if (nwords > 0)
		ring_init(&r, nwords, bits);

	for (size_t j = 0; j < len && nprep > 0; j++)
	{
		size_t best = 0;

		while (j < len && !cand[t[j]])
			j++;
		if (j == len)
			break;
		for (int k = 0; k < nprep; k++)
		{
			size_t m;

			work += prep[k].len;
			if (prep[k].ambiguous)
				m = match_all(prep[k].s, prep[k].len, t + j, len - j, &r);
			else
				m = match_single(prep[k].s, prep[k].len, t + j, len - j);
			if (m > best)
				best = m;
		}
		/* a hostile text can make matching slow: let the caller stop it */
		if (work >= REDACT_STOP_EVERY)
		{
			work = 0;
			if (stop != NULL && stop())
			{
				rc = -2;
				break;
			}
		}
		if (best == 0)
			continue;
		if (o.p == NULL)
		{
			/* room for the text and a few marks: most answers need no growth */
			o.cap = len + 4 * sizeof(REDACT_MARK);
			if (o.cap < len || (o.p = malloc(o.cap)) == NULL)
			{
				o.cap = 0;
				rc = -1;
				break;
			}
		}
		if (!out_append(&o, text + copied, j - copied) ||
			!out_append(&o, REDACT_MARK, sizeof(REDACT_MARK) - 1))
		{
			rc = -1;
			break;
		}
		copied = j + best;
		j = copied - 1;
	}
	if (rc == 0 && o.p != NULL)
	{
		if (out_append(&o, text + copied, len - copied))
		{
			o.p[o.len] = '\0';
			*out = o.p;
			*outlen = o.len;
			o.p = NULL;
			rc = 1;
		}
		else
			rc = -1;
	}
	free(o.p);
	if (bits != stack_bits)
		free(bits);
	if (prep != stack_prep)
		free(prep);
	return rc;
}
