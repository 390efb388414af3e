/*
 * host_rules.c
 *		Matching of host names and resolved addresses against
 *		dci_client.allowed_hosts.
 */
#include "host_rules.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

typedef struct HostRange
{
	int			  family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int			  bits;
} HostRange;

struct HostRules
{
	int		   nnames;
	char	 **names; /* lower case; "*.x" kept as ".x" */
	int		   nranges;
	HostRange *ranges;
};

/* rules while parsing: separate allocations */
static void
free_parts(HostRules *rules)
{
	if (rules == NULL)
		return;
	for (int i = 0; i < rules->nnames; i++)
		free(rules->names[i]);
	free(rules->names);
	free(rules->ranges);
	free(rules);
}

/*
 * The parsed rules as one malloc'd block (ranges, name pointers and names
 * inside it), so a GUC check hook can hand them over as its "extra", which
 * PostgreSQL frees with a single free().
 */
static HostRules *
flatten(const HostRules *parts)
{
	size_t size = sizeof(HostRules) + parts->nranges * sizeof(HostRange) +
				  parts->nnames * sizeof(char *);
	HostRules *flat;
	char	  *p;

	for (int i = 0; i < parts->nnames; i++)
		size += strlen(parts->names[i]) + 1;
	flat = malloc(size);
	if (flat == NULL)
		return NULL;
	p = (char *) (flat + 1);
	flat->nranges = parts->nranges;
	flat->ranges = (HostRange *) p;
	if (parts->nranges)
		memcpy(flat->ranges, parts->ranges, parts->nranges * sizeof(HostRange));
	p += parts->nranges * sizeof(HostRange);
	flat->nnames = parts->nnames;
	flat->names = (char **) p;
	p += parts->nnames * sizeof(char *);
	for (int i = 0; i < parts->nnames; i++)
	{
		size_t len = strlen(parts->names[i]) + 1;

		memcpy(p, parts->names[i], len);
		flat->names[i] = p;
		p += len;
	}
	return flat;
}

void
host_rules_free(HostRules *rules)
{
	free(rules);
}

/* parse "addr" or "addr/bits" into r; false when it is not an address */
static bool
parse_range(const char *text, HostRange *r)
{
	char  buf[64];
	char *slash;
	int	  maxbits;

	if (strlen(text) >= sizeof(buf))
		return false;
	strcpy(buf, text);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, r->addr) == 1)
	{
		r->family = AF_INET;
		maxbits = 32;
	}
	else if (inet_pton(AF_INET6, buf, r->addr) == 1)
	{
		r->family = AF_INET6;
		maxbits = 128;
	}
	else
		return false;
	r->bits = maxbits;
	if (slash)
	{
		char *end;
		long  bits = strtol(slash + 1, &end, 10);

		if (slash[1] == '\0' || *end != '\0' || bits < 0 || bits > maxbits)
			return false;
		r->bits = (int) bits;
	}
	return true;
}

static bool
valid_name(const char *name)
{
	if (*name == '\0' || strlen(name) > 253)
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char) *p) && *p != '-' && *p != '.' && *p != '_')
			return false;
	return true;
}

HostRules *
host_rules_parse(const char *spec, char *errbuf, size_t errlen)
{
	HostRules *rules = calloc(1, sizeof(HostRules));
	char	  *copy = strdup(spec ? spec : "");
	char	  *save = NULL;

	if (rules == NULL || copy == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		goto fail;
	}
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		char	 *end;
		HostRange r;

		while (isspace((unsigned char) *tok))
			tok++;
		end = tok + strlen(tok);
		while (end > tok && isspace((unsigned char) end[-1]))
			*--end = '\0';
		if (*tok == '\0')
			continue;
		if (tok[0] == '[' && end[-1] == ']')
		{
			end[-1] = '\0';
			tok++;
		}

		if (parse_range(tok, &r))
		{
			HostRange *ranges = realloc(rules->ranges, (rules->nranges + 1) * sizeof(HostRange));

			if (ranges == NULL)
				goto nomem;
			rules->ranges = ranges;
			rules->ranges[rules->nranges++] = r;
			continue;
		}

		{
			const char *name = tok;
			char	  **names;
			char	   *stored;

			if (name[0] == '*' && name[1] == '.')
				name++; /* keep ".suffix" */
			if (!valid_name(name[0] == '.' ? name + 1 : name) || strchr(tok + 1, '*'))
			{
				snprintf(errbuf, errlen, "\"%s\" is not a host name, \"*.suffix\" pattern, IP address or CIDR range", tok);
				goto fail;
			}
			names = realloc(rules->names, (rules->nnames + 1) * sizeof(char *));
			if (names == NULL)
				goto nomem;
			rules->names = names;
			stored = strdup(name);
			if (stored == NULL)
				goto nomem;
			for (char *p = stored; *p; p++)
				*p = (char) tolower((unsigned char) *p);
			/* a trailing dot names the same host */
			if (strlen(stored) > 1 && stored[strlen(stored) - 1] == '.')
				stored[strlen(stored) - 1] = '\0';
			rules->names[rules->nnames++] = stored;
		}
	}
	free(copy);
	{
		HostRules *flat = flatten(rules);

		free_parts(rules);
		if (flat == NULL)
			snprintf(errbuf, errlen, "out of memory");
		return flat;
	}

nomem:
	snprintf(errbuf, errlen, "out of memory");
fail:
	free(copy);
	free_parts(rules);
	return NULL;
}

static bool
range_contains(const HostRange *r, int family, const unsigned char *addr)
{
	int full = r->bits / 8;
	int rest = r->bits % 8;

	if (r->family != family)
		return false;
	if (memcmp(r->addr, addr, full) != 0)
		return false;
	if (rest)
	{
		unsigned char mask = (unsigned char) (0xff << (8 - rest));

		if ((r->addr[full] & mask) != (addr[full] & mask))
			return false;
	}
	return true;
}

/* family and raw bytes of an address; IPv4-mapped IPv6 becomes IPv4 */
static bool
address_bytes(const struct sockaddr *sa, int *family, unsigned char *bytes)
{
	if (sa->sa_family == AF_INET)
	{
		*family = AF_INET;
		memcpy(bytes, &((const struct sockaddr_in *) sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6)
	{
		const unsigned char		  *b = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

		if (memcmp(b, mapped, 12) == 0)
		{
			*family = AF_INET;
			memcpy(bytes, b + 12, 4);
		}
		else
		{
			*family = AF_INET6;
			memcpy(bytes, b, 16);
		}
		return true;
	}
	return false;
}

static bool
in_any_range(const HostRules *rules, int family, const unsigned char *bytes)
{
	for (int i = 0; i < rules->nranges; i++)
		if (range_contains(&rules->ranges[i], family, bytes))
			return true;
	return false;
}

/* is the address loopback, private, link-local, unspecified or otherwise not public */
static bool
address_is_special(const struct sockaddr *sa)
{
	/* ranges that are not the public internet (RFC 6890 and friends) */
	static const char *const special[] = {
		"0.0.0.0/8",
		"10.0.0.0/8",
		"100.64.0.0/10",
		"127.0.0.0/8",
		"169.254.0.0/16",
		"172.16.0.0/12",
		"192.0.0.0/24",
		"192.168.0.0/16",
		"198.18.0.0/15",
		"224.0.0.0/3",
		"::/128",
		"::1/128",
		"fc00::/7",
		"fe80::/10",
		"ff00::/8",
		"64:ff9b::/96",
		"2001:db8::/32",
	};
	int			  family;
	unsigned char bytes[16];

	if (!address_bytes(sa, &family, bytes))
		return true;
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
	{
		HostRange r;

		if (parse_range(special[i], &r) && range_contains(&r, family, bytes))
			return true;
	}
	return false;
}

bool
host_rules_allow_host(const HostRules *rules, const char *host)
{
	unsigned char bytes[16];
	char		  lower[256];
	size_t		  len;

	if (rules == NULL)
		return true;
	if (inet_pton(AF_INET, host, bytes) == 1)
		return in_any_range(rules, AF_INET, bytes);
	if (inet_pton(AF_INET6, host, bytes) == 1)
	{
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

		if (memcmp(bytes, mapped, 12) == 0)
			return in_any_range(rules, AF_INET, bytes + 12);
		return in_any_range(rules, AF_INET6, bytes);
	}

	len = strlen(host);
	if (len == 0 || len >= sizeof(lower))
		return false;
	for (size_t i = 0; i <= len; i++)
		lower[i] = (char) tolower((unsigned char) host[i]);
	if (len > 1 && lower[len - 1] == '.')
		lower[--len] = '\0';

	for (int i = 0; i < rules->nnames; i++)
	{
		const char *n = rules->names[i];
		size_t		nlen = strlen(n);

		if (n[0] == '.')
		{
			/* "*.example.org" matches a.example.org, not example.org */
			if (len > nlen && strcmp(lower + len - nlen, n) == 0)
				return true;
		}
		else if (strcmp(lower, n) == 0)
			return true;
	}
	return false;
}

bool
host_rules_allow_address(const HostRules *rules, const struct sockaddr *sa)
{
	int			  family;
	unsigned char bytes[16];

	if (rules == NULL)
		return true;
	if (!address_bytes(sa, &family, bytes))
		return false;
	if (in_any_range(rules, family, bytes))
		return true;
	return !address_is_special(sa);
}
