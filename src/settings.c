/*
 * settings.c
 *		The dci_client.* settings (GUCs): variables, check hooks, definitions.
 *		Every module reads its settings from here (settings.h).
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "dci_client.h"

#include "host_rules.h"
#include "settings.h"

int			 dci_log_requests = DCI_LOG_ERRORS;
int			 dci_log_retention_days = 30;
char		*dci_key_file = NULL;
char		*dci_retired_key_files = NULL;
static char *dci_allowed_hosts = NULL;
char		*dci_proxy = NULL;
char		*dci_user_agent = NULL;
int			 dci_timeout_ms = 30000;
int			 dci_connect_timeout_ms = 10000;
int			 dci_max_response_bytes = 16 * 1024 * 1024;
int			 dci_jwks_cache_ttl_s = 3600;
int			 dci_jwks_refetch_interval_s = 60;
int			 dci_jwks_max_stale_s = 86400;
int			 dci_max_retries = 2;
int			 dci_token_refresh_margin_s = 60;
int			 dci_token_min_interval_ms = 1000;
int			 dci_shared_token_slots = 64;
int			 dci_max_concurrency = 16;
int			 dci_callback_max_age_s = 300;
int			 dci_callback_clock_skew_s = 30;
int			 dci_callback_max_bytes = 4 * 1024 * 1024;
int			 dci_inbox_retention_days = 30;

/*
 * allowed_hosts as parsed by its check hook (GUC's "extra"; NULL: empty).
 * A value that cannot be parsed is refused, so the rules never fall open.
 * The generation counts changes: http.c drops pooled connections when it
 * moves, so a tightened list holds for the very next request.
 */
static const HostRules *parsed_host_rules = NULL;
static uint64			host_rules_generation = 0;

const struct HostRules *
dci_host_rules(void)
{
	return parsed_host_rules;
}

uint64
dci_host_rules_generation(void)
{
	return host_rules_generation;
}

static bool
check_allowed_hosts(char **newval, void **extra, GucSource source)
{
	char	   errbuf[256];
	HostRules *rules;

	if (*newval == NULL || **newval == '\0')
	{
		*extra = NULL;
		return true;
	}
	rules = host_rules_parse(*newval, errbuf, sizeof(errbuf));
	if (rules == NULL && source < PGC_S_INTERACTIVE)
	{
		/*
		 * From postgresql.conf, ALTER SYSTEM or a placeholder set before the
		 * library was loaded: refusing would leave the default, which allows
		 * every host.  An empty list allows none: fail closed, and say so.
		 */
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for parameter \"dci_client.allowed_hosts\": every host is refused until it is fixed"),
				 errdetail("%s", errbuf)));
		rules = host_rules_parse("", errbuf, sizeof(errbuf));
	}
	if (rules == NULL)
	{
		GUC_check_errdetail("%s", errbuf);
		return false;
	}
	/* one malloc'd block: guc keeps it with the value and free()s it */
	*extra = rules;
	return true;
}

static void
assign_allowed_hosts(const char *newval, void *extra)
{
	if (extra != parsed_host_rules)
		host_rules_generation++;
	parsed_host_rules = extra;
}

/* values that go into a header line or a URL: no control characters */
static bool
check_no_newlines(char **newval, void **extra, GucSource source)
{
	for (const char *p = *newval; p && *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
		{
			GUC_check_errdetail("The value must not contain control characters (carriage return, line feed, ...).");
			return false;
		}
	return true;
}

static bool
check_proxy(char **newval, void **extra, GucSource source)
{
	if (!check_no_newlines(newval, extra, source))
		return false;
	if (*newval != NULL && **newval != '\0' &&
		strncmp(*newval, "http://", 7) != 0 && strncmp(*newval, "https://", 8) != 0 &&
		strncmp(*newval, "socks5h://", 10) != 0 && strncmp(*newval, "socks5://", 9) != 0)
	{
		GUC_check_errdetail("The proxy must be an http://, https://, socks5:// or socks5h:// URL.");
		return false;
	}
	return true;
}

static const struct config_enum_entry log_level_options[] = {
	{"off", DCI_LOG_OFF, false},
	{"errors", DCI_LOG_ERRORS, false},
	{"all", DCI_LOG_ALL, false},
	{NULL, 0, false}};

void
dci_define_settings(void)
{
	DefineCustomStringVariable("dci_client.key_file",
							   "File holding the key that encrypts stored secrets.",
							   "Relative paths are taken from the directory of postgresql.conf.",
							   &dci_key_file, "dci_client.key",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("dci_client.retired_key_files",
							   "Comma-separated files of older keys still accepted for decryption.",
							   NULL,
							   &dci_retired_key_files, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_LIST_INPUT,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("dci_client.allowed_hosts",
							   "Hosts, *.suffix patterns and CIDR ranges that calls may reach (empty: any).",
							   NULL,
							   &dci_allowed_hosts, "",
							   PGC_SUSET, GUC_LIST_INPUT,
							   check_allowed_hosts, assign_allowed_hosts, NULL);
	DefineCustomStringVariable("dci_client.proxy",
							   "Egress proxy URL (empty: none; proxy environment variables are ignored).",
							   NULL,
							   &dci_proxy, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   check_proxy, NULL, NULL);
	DefineCustomIntVariable("dci_client.timeout_ms",
							"Time budget of one call when the data source sets none.",
							"Covers the token fetch, retries, backoff and the resend after a 401.",
							&dci_timeout_ms, 30000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.connect_timeout_ms",
							"Limit for each TCP and TLS connect.",
							NULL,
							&dci_connect_timeout_ms, 10000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.max_response_bytes",
							"Largest response body accepted.",
							NULL,
							&dci_max_response_bytes, 16 * 1024 * 1024, 1024, MaxAllocSize / 2,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.max_retries",
							"Retries of a failed exchange.",
							NULL,
							&dci_max_retries, 2, 0, 10,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.token_refresh_margin_s",
							"A cached token is renewed this long before it expires.",
							NULL,
							&dci_token_refresh_margin_s, 60, 0, 86400,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.token_min_interval_ms",
							"Shortest time between two token fetches for a data source, a 401 aside.",
							"A token younger than this is reused even when a refresh is asked for.",
							&dci_token_min_interval_ms, 1000, 0, 3600 * 1000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomStringVariable("dci_client.user_agent",
							   "User-Agent header of every call.",
							   NULL,
							   &dci_user_agent, "dci_client/" DCI_CLIENT_VERSION,
							   PGC_USERSET, 0,
							   check_no_newlines, NULL, NULL);
	DefineCustomEnumVariable("dci_client.log_requests",
							 "Which calls are recorded in dci_request_log: off, errors or all.",
							 "Needs shared_preload_libraries; without it records go to the server log.",
							 &dci_log_requests, DCI_LOG_ERRORS, log_level_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.log_retention_days",
							"Records of dci_request_log older than this are deleted.",
							NULL,
							&dci_log_retention_days, 30, 1, 3650,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.callback_max_age_s",
							"dci_receive refuses messages whose header.message_ts is older than this.",
							NULL,
							&dci_callback_max_age_s, 300, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.callback_clock_skew_s",
							"dci_receive accepts a header.message_ts this far in the future.",
							NULL,
							&dci_callback_clock_skew_s, 30, 0, 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.callback_max_bytes",
							"dci_receive refuses larger bodies.",
							NULL,
							&dci_callback_max_bytes, 4 * 1024 * 1024, 1024, 256 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.inbox_retention_days",
							"Rows of dci_inbox older than this are deleted.",
							"Must stay longer than callback_max_age_s: the inbox is the replay record.",
							&dci_inbox_retention_days, 30, 1, 3650,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.max_concurrency",
							"Most envelopes one batched search keeps in flight, whatever the data source allows.",
							"The cluster-wide ceiling over dci_data_source.max_concurrency and the concurrency argument.",
							&dci_max_concurrency, 16, 1, 64,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.jwks_cache_ttl_s",
							"How long a registry's key set (registry_jwks_url) is kept when its answer has no Cache-Control max-age.",
							NULL,
							&dci_jwks_cache_ttl_s, 3600, 0, 7 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.jwks_refetch_interval_s",
							"Shortest time between two fetches of a registry's key set, per session.",
							"An unknown kid or an expired set fetches again only this long after the last fetch.",
							&dci_jwks_refetch_interval_s, 60, 0, 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dci_client.jwks_max_stale_s",
							"How long past its expiry a registry's key set is still used while it cannot be fetched again.",
							NULL,
							&dci_jwks_max_stale_s, 86400, 0, 30 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	/* sizes shared memory: only meaningful (and only allowed) when preloading */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("dci_client.shared_token_slots",
								"Tokens kept in shared memory (needs shared_preload_libraries).",
								NULL,
								&dci_shared_token_slots, 64, 1, 4096,
								PGC_POSTMASTER, 0,
								NULL, NULL, NULL);
	MarkGUCPrefixReserved("dci_client");
}
