/*
 * redact_fuzz.c
 *		libFuzzer target for redaction.  The input is a needle, a 0x00 byte,
 *		and a text (no 0x00: the input is both).  Checked: redact_match agrees
 *		with a plain full-table matcher written apart; when nothing is
 *		redacted no position matches; and after redaction every remaining
 *		match overlaps a "[redacted]" (a needle may share bytes with the mark,
 *		but never lies wholly in text that was copied).
 */
#include "redact.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the checks are quadratic: longer inputs (the fixtures) are cut */
#define MAX_INPUT 4096
#define REF_NLEN  48
#define REF_TLEN  200

static int
hx(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static long
hex4(const unsigned char *t, size_t avail)
{
	long v = 0;

	if (avail < 4)
		return -1;
	for (int k = 0; k < 4; k++)
	{
		if (hx(t[k]) < 0)
			return -1;
		v = v * 16 + hx(t[k]);
	}
	return v;
}

/*
 * The tokens at t[j..]: up to 3 (bytes spelled, text used).
 */
typedef struct Tok
{
	unsigned char b[4];
	size_t		  blen;
	size_t		  used;
} Tok;

static int
tokens(const unsigned char *t, size_t tlen, size_t j, Tok *out)
{
	int			k = 0;
	const char *esc = "\"\"\\\\//b\bf\fn\nr\rt\t";

	out[k] = (Tok){{t[j]}, 1, 1};
	k++;
	if (t[j] == '+')
		out[k++] = (Tok){{' '}, 1, 1};
	if (t[j] == '%' && j + 2 < tlen && hx(t[j + 1]) >= 0 && hx(t[j + 2]) >= 0)
		out[k++] = (Tok){{(unsigned char) (hx(t[j + 1]) * 16 + hx(t[j + 2]))}, 1, 3};
	if (t[j] == '\\' && j + 1 < tlen)
	{
		for (const char *e = esc; *e; e += 2)
			if (t[j + 1] == (unsigned char) e[0])
				out[k++] = (Tok){{(unsigned char) e[1]}, 1, 2};
		if (t[j + 1] == 'u')
		{
			long   cp = hex4(t + j + 2, tlen - j - 2);
			size_t used = 6;

			if (cp >= 0xD800 && cp < 0xDC00)
			{
				long lo = (j + 8 <= tlen && t[j + 6] == '\\' && t[j + 7] == 'u') ? hex4(t + j + 8, tlen - j - 8) : -1;

				cp = (lo >= 0xDC00 && lo < 0xE000) ? 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00) : -1;
				used = 12;
			}
			else if (cp >= 0xDC00 && cp < 0xE000)
				cp = -1;
			if (cp >= 0)
			{
				Tok *o = &out[k++];

				o->used = used;
				if (cp < 0x80)
					o->blen = 1, o->b[0] = cp;
				else if (cp < 0x800)
					o->blen = 2, o->b[0] = 0xC0 + cp / 64, o->b[1] = 0x80 + cp % 64;
				else if (cp < 0x10000)
					o->blen = 3, o->b[0] = 0xE0 + cp / 4096, o->b[1] = 0x80 + cp / 64 % 64,
					o->b[2] = 0x80 + cp % 64;
				else
					o->blen = 4, o->b[0] = 0xF0 + cp / 262144, o->b[1] = 0x80 + cp / 4096 % 64,
					o->b[2] = 0x80 + cp / 64 % 64, o->b[3] = 0x80 + cp % 64;
			}
		}
	}
	return k;
}

/* longest match at t[0] by a full (needle position x text offset) table */
static size_t
ref_match(const unsigned char *nd, size_t nlen, const unsigned char *t, size_t tlen)
{
	static bool reach[REF_NLEN + 1][REF_TLEN + 1];
	size_t		best = 0;

	if (nlen == 0)
		return 0;
	for (size_t i = 0; i <= nlen; i++)
		memset(reach[i], 0, tlen + 1);
	reach[0][0] = true;
	for (size_t j = 0; j < tlen; j++)
		for (size_t i = 0; i < nlen; i++)
		{
			Tok tk[4];
			int n;

			if (!reach[i][j])
				continue;
			n = tokens(t, tlen, j, tk);
			for (int k = 0; k < n; k++)
				if (tk[k].blen <= nlen - i && memcmp(tk[k].b, nd + i, tk[k].blen) == 0 &&
					j + tk[k].used <= tlen)
					reach[i + tk[k].blen][j + tk[k].used] = true;
		}
	for (size_t j = 0; j <= tlen; j++)
		if (reach[nlen][j])
			best = j;
	return best;
}

/* the invariants of redact_text with these needles */
static void
check_redact(const RedactNeedle *nd, int n, const char *text, size_t tlen)
{
	char  *out = NULL;
	size_t outlen = 0;
	int	   rc = redact_text(nd, n, text, tlen, &out, &outlen, NULL);
	bool   usable = false;

	for (int k = 0; k < n; k++)
		usable |= nd[k].s != NULL && nd[k].len >= REDACT_MIN_LEN;
	if (rc < 0 || (rc == 1 && !usable))
		abort();
	if (rc == 0)
	{
		if (out != NULL)
			abort();
		for (int k = 0; k < n && usable; k++)
			for (size_t p = 0; p < tlen && nd[k].len >= REDACT_MIN_LEN; p++)
				if (redact_match(nd[k].s, nd[k].len, text + p, tlen - p) != 0)
					abort();
		return;
	}
	if (out == NULL || out[outlen] != '\0')
		abort();
	{
		/* bytes of out covered by a mark */
		bool  *mark = calloc(outlen + 1, 1);
		size_t ml = strlen(REDACT_MARK);
		bool   any = false;

		if (mark == NULL)
			abort();
		for (size_t p = 0; p + ml <= outlen; p++)
			if (memcmp(out + p, REDACT_MARK, ml) == 0)
			{
				memset(mark + p, 1, ml);
				any = true;
			}
		if (!any)
			abort();
		for (int k = 0; k < n; k++)
		{
			if (nd[k].s == NULL || nd[k].len < REDACT_MIN_LEN)
				continue;
			for (size_t p = 0; p < outlen; p++)
			{
				size_t m = redact_match(nd[k].s, nd[k].len, out + p, outlen - p);
				bool   overlaps = false;

				for (size_t q = p; q < p + m && !overlaps; q++)
					overlaps = mark[q];
				if (m > 0 && !overlaps)
					abort();
			}
		}
		free(mark);
	}
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*s = (const char *) data;
	const char	*nul;
	const char	*needle;
	size_t		 nlen;
	const char	*text;
	size_t		 tlen;
	RedactNeedle nd[2];
	int			 checked = 0;

	if (size > MAX_INPUT)
		size = MAX_INPUT;
	nul = memchr(s, '\0', size);
	needle = s;
	nlen = nul ? (size_t) (nul - s) : size;
	text = nul ? nul + 1 : s;
	tlen = nul ? size - nlen - 1 : size;

	/* redact_match against the reference, where it is cheap */
	if (nlen <= REF_NLEN)
		for (size_t p = 0; p < tlen && checked < 12; p++)
		{
			/* a needle byte takes at most 6 text bytes (\u00XX) */
			size_t span = tlen - p < REF_TLEN ? tlen - p : REF_TLEN;

			if (span > 6 * nlen)
				span = 6 * nlen;
			size_t want;

			if (p > 0 && text[p] != needle[0] && text[p] != '%' && text[p] != '\\' && text[p] != '+')
				continue;
			checked++;
			want = ref_match((const unsigned char *) needle, nlen, (const unsigned char *) text + p, span);
			if (redact_match(needle, nlen, text + p, span) != want)
				abort();
		}

	nd[0].s = needle;
	nd[0].len = nlen;
	check_redact(nd, 1, text, tlen);
	/* two needles: the second a suffix of the first */
	nd[1].s = nlen > 1 ? needle + 1 : NULL;
	nd[1].len = nlen > 1 ? nlen - 1 : 0;
	check_redact(nd, 2, text, tlen);
	return 0;
}
