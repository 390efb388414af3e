/*
 * secrets.h
 *		The key file and the encryption of stored secrets (secrets.c).
 */
#ifndef DCI_SECRETS_H
#define DCI_SECRETS_H

#include "postgres.h"
#include "errors.h"

/* encrypt plaintext for (table, column, row id, binding); creates the key file if needed */
extern bytea *dci_secret_encrypt(const char *plaintext, const char *table,
								 const char *column, int32 row_id, const char *binding);
/* decrypt; returns NULL and fills err (DC001) on a missing key or a failed check */
extern char *dci_secret_decrypt(const bytea *ciphertext, const char *table,
								const char *column, int32 row_id, const char *binding,
								const char *owner_desc, DciError *err);
/* the binding string: the columns that say where a secret may be sent */
extern char *dci_secret_binding(const char *base_url, const char *auth_url,
								const char *cred_location, bool verify_ssl,
								const char *ca_cert);
/* load pgcrypto and warm OpenSSL in the postmaster (preloaded only) */
extern void dci_secrets_preload(void);
/* wipe and free a palloc'd secret */
extern void dci_secret_free(char *secret);

#endif /* DCI_SECRETS_H */
