/*
 * settings.h
 *		The dci_client.* settings (settings.c).
 */
#ifndef DCI_SETTINGS_H
#define DCI_SETTINGS_H

#include "postgres.h"

extern char *dci_key_file;
extern char *dci_retired_key_files;
extern char *dci_proxy;
extern char *dci_user_agent;
extern int	 dci_timeout_ms;
extern int	 dci_connect_timeout_ms;
extern int	 dci_max_response_bytes;
extern int	 dci_max_retries;
extern int	 dci_token_refresh_margin_s;
extern int	 dci_token_min_interval_ms;
extern int	 dci_shared_token_slots;
extern int	 dci_max_concurrency;
/* dci_receive (inbound.c) */
extern int	 dci_callback_max_age_s;
extern int	 dci_callback_clock_skew_s;
extern int	 dci_callback_max_bytes;
extern int	 dci_inbox_retention_days;
/* registry keys from JWKS (registry_keys.c) */
extern int dci_jwks_cache_ttl_s;
extern int dci_jwks_refetch_interval_s;
extern int dci_jwks_max_stale_s;

/* parsed form of dci_client.allowed_hosts, NULL when empty */
struct HostRules;
extern const struct HostRules *dci_host_rules(void);
/* changes whenever allowed_hosts changes */
extern uint64 dci_host_rules_generation(void);

/* dci_client.log_requests */
typedef enum DciLogLevel
{
	DCI_LOG_OFF,
	DCI_LOG_ERRORS,
	DCI_LOG_ALL
} DciLogLevel;

extern int dci_log_requests;
extern int dci_log_retention_days;

/* define every setting (from _PG_init) */
extern void dci_define_settings(void);

#endif /* DCI_SETTINGS_H */
