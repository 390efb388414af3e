/*
 * unit.h
 *		A minimal test harness for the PostgreSQL-free modules: CHECK records
 *		a pass or a failure, unit_finish prints "N passed, N failed".
 */
#ifndef DCI_UNIT_H
#define DCI_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_passed = 0;
static int unit_failed = 0;

#define CHECK(cond, ...)                                         \
	do                                                           \
	{                                                            \
		if (cond)                                                \
			unit_passed++;                                       \
		else                                                     \
		{                                                        \
			unit_failed++;                                       \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
		}                                                        \
	} while (0)

/* strings equal (either may be NULL) */
#define CHECK_STR(got, want, what)                                                          \
	do                                                                                      \
	{                                                                                       \
		const char *g_ = (got), *w_ = (want);                                               \
		CHECK(g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0,                              \
			  "%s:\n  got  %s\n  want %s", (what), g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
	} while (0)

static inline char *
unit_read_file(const char *dir, const char *name)
{
	char  path[4096];
	FILE *f;
	long  n;
	char *s;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (f == NULL)
	{
		fprintf(stderr, "cannot open %s\n", path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	s = malloc(n + 1);
	if (s == NULL || fread(s, 1, n, f) != (size_t) n)
		exit(2);
	s[n] = '\0';
	fclose(f);
	return s;
}

static inline int
unit_finish(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, unit_passed, unit_failed);
	return unit_failed == 0 ? 0 : 1;
}

/* a fixture key (needs sig_keys.h included before unit.h); NULL and err on failure */
#ifdef DCI_SIG_KEYS_H
static inline DciSigKey *
unit_load_key(const char *dir, const char *name, bool is_private, char *err, size_t errlen)
{
	char	  *pem = unit_read_file(dir, name);
	DciSigKey *key = pem ? dci_sigkey_load(pem, is_private, err, errlen) : NULL;

	free(pem);
	return key;
}
#endif

#endif
