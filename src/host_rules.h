/*
 * host_rules.h
 *		dci_client.allowed_hosts: which hosts and addresses may be contacted.
 *
 * Entries are exact host names, "*.suffix" patterns, IP addresses and CIDR
 * ranges.  A host is allowed by name (or, for an IP literal, by range); the
 * address it resolves to must then be public or inside a listed range, so a
 * listed name cannot be pointed at loopback, link-local or private space.
 * Free of PostgreSQL headers.
 */
#ifndef DCI_HOST_RULES_H
#define DCI_HOST_RULES_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;
typedef struct HostRules HostRules;

/*
 * Parse a comma-separated list into one malloc'd block (free() releases it);
 * NULL with a message in errbuf when invalid or out of memory.
 */
extern HostRules *host_rules_parse(const char *spec, char *errbuf, size_t errlen);
extern void		  host_rules_free(HostRules *rules);

/* may a URL with this host (name, or IP literal without brackets) be called */
extern bool host_rules_allow_host(const HostRules *rules, const char *host);

/* may a connection be opened to this resolved address */
extern bool host_rules_allow_address(const HostRules *rules, const struct sockaddr *addr);

#endif /* DCI_HOST_RULES_H */
