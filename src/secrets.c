/*
 * secrets.c
 *		The key file and the encryption of stored secrets.
 *
 * A secret is encrypted with pgcrypto's primitives (AES-256-CBC with a
 * random IV, then HMAC-SHA-256), encrypt-then-MAC.  The MAC covers the key
 * id, the table, the column, the row id and the "binding" (the columns that
 * say where the secret may be sent), so a value that is modified, copied to
 * another row or column, or left behind after the origin changed, fails to
 * decrypt instead of yielding garbage.
 *
 * Layout: version(1) | key id(8) | IV(16) | AES ciphertext | HMAC(32).
 *
 * The key is read from its file when needed (cold path only: the trigger
 * and the loading of a data source), never cached, so a new key file takes
 * effect at once and the key stays in memory no longer than an operation.
 */
#include "dci_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "port.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/varlena.h"

#include "catalog.h"
#include "errors.h"
#include "hex.h"
#include "secrets.h"
#include "settings.h"

#define KEY_LEN			 32
#define KEY_ID_LEN		 8
#define IV_LEN			 16
#define TAG_LEN			 32
#define FORMAT_VERSION	 1
#define HEADER_LEN		 (1 + KEY_ID_LEN + IV_LEN)
#define MAX_RETIRED_KEYS 16

typedef struct DciKey
{
	unsigned char id[KEY_ID_LEN];
	unsigned char enc[KEY_LEN];
	unsigned char mac[KEY_LEN];
} DciKey;

typedef struct DciKeySet
{
	bool   have_current;
	DciKey current;
	int	   nretired;
	DciKey retired[MAX_RETIRED_KEYS];
} DciKeySet;

/* pgcrypto's SQL-callable C functions, resolved once */
static PGFunction pgc_encrypt_iv = NULL;
static PGFunction pgc_decrypt_iv = NULL;
static PGFunction pgc_hmac = NULL;

static void
load_pgcrypto(void)
{
	if (pgc_hmac != NULL)
		return;
	pgc_encrypt_iv = load_external_function("$libdir/pgcrypto", "pg_encrypt_iv", true, NULL);
	pgc_decrypt_iv = load_external_function("$libdir/pgcrypto", "pg_decrypt_iv", true, NULL);
	pgc_hmac = load_external_function("$libdir/pgcrypto", "pg_hmac", true, NULL);
}

static bytea *bytes_to_bytea(const void *data, size_t len);
static void	  hmac_sha256(const unsigned char *key, size_t keylen, const void *data, size_t len,
						  unsigned char *out);

/*
 * Called in the postmaster when preloaded: load pgcrypto and run its AES and
 * HMAC once, so every backend inherits the library and OpenSSL's algorithm
 * tables instead of paying a few milliseconds on its first call.
 */
void
dci_secrets_preload(void)
{
	unsigned char zero[KEY_LEN] = {0};
	unsigned char out[TAG_LEN];
	bytea		 *ct;

	load_pgcrypto();
	hmac_sha256(zero, KEY_LEN, zero, sizeof(zero), out);
	ct = DatumGetByteaPP(DirectFunctionCall4(pgc_encrypt_iv,
											 PointerGetDatum(bytes_to_bytea(zero, 16)),
											 PointerGetDatum(bytes_to_bytea(zero, KEY_LEN)),
											 PointerGetDatum(bytes_to_bytea(zero, IV_LEN)),
											 CStringGetTextDatum("aes-cbc/pad:pkcs")));
	(void) DirectFunctionCall4(pgc_decrypt_iv, PointerGetDatum(ct),
							   PointerGetDatum(bytes_to_bytea(zero, KEY_LEN)),
							   PointerGetDatum(bytes_to_bytea(zero, IV_LEN)),
							   CStringGetTextDatum("aes-cbc/pad:pkcs"));
}

static bytea *
bytes_to_bytea(const void *data, size_t len)
{
	bytea *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return b;
}

static void
wipe_bytea(bytea *b)
{
	if (b != NULL)
	{
		explicit_bzero(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
		pfree(b);
	}
}

/* HMAC-SHA-256 through pgcrypto */
static void
hmac_sha256(const unsigned char *key, size_t keylen, const void *data, size_t len,
			unsigned char *out)
{
	bytea *k = bytes_to_bytea(key, keylen);
	bytea *d = bytes_to_bytea(data, len);
	bytea *mac;

	load_pgcrypto();
	mac = DatumGetByteaPP(DirectFunctionCall3(pgc_hmac, PointerGetDatum(d),
											  PointerGetDatum(k),
											  CStringGetTextDatum("sha256")));
	Assert(VARSIZE_ANY_EXHDR(mac) == TAG_LEN);
	memcpy(out, VARDATA_ANY(mac), TAG_LEN);
	pfree(mac);
	wipe_bytea(k);
	pfree(d);
}

static void
derive_key(const unsigned char *master, DciKey *key)
{
	unsigned char idfull[TAG_LEN];

	hmac_sha256(master, KEY_LEN, "dci_client key id", 17, idfull);
	memcpy(key->id, idfull, KEY_ID_LEN);
	hmac_sha256(master, KEY_LEN, "dci_client encrypt", 18, key->enc);
	hmac_sha256(master, KEY_LEN, "dci_client authenticate", 23, key->mac);
}

static char *
key_id_hex(const unsigned char *id)
{
	char *hex = palloc(KEY_ID_LEN * 2 + 1);

	for (int i = 0; i < KEY_ID_LEN; i++)
		sprintf(hex + i * 2, "%02x", id[i]);
	return hex;
}

/* a key file setting as an absolute path: relative to postgresql.conf's directory */
static char *
key_path(const char *setting)
{
	char *dir;

	if (is_absolute_path(setting))
		return pstrdup(setting);
	dir = pstrdup(ConfigFileName ? ConfigFileName : DataDir);
	get_parent_directory(dir);
	return psprintf("%s/%s", dir, setting);
}

/*
 * Read one key file: 32 raw bytes, or 64 hex digits.  Returns false when the
 * file does not exist; raises DC001 when it exists but is unusable.  The
 * message names the setting, not the path, which non-superusers must not see.
 */
static bool
read_key_file(const char *setting_name, const char *path, unsigned char *master)
{
	int			fd;
	struct stat st;
	char		buf[160];
	ssize_t		n;
	bool		ok = false;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("could not open the key file named by %s: %m", setting_name)));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("the key file named by %s is not a regular file", setting_name)));
	}
	/* like ssl_key_file: a key others can read is no key */
	if ((st.st_uid == geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
		(st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IRWXO))))
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("the key file named by %s has group or world access", setting_name),
				 errhint("Make it mode 0600, owned by the database server user.")));
	}
	n = read(fd, buf, sizeof(buf));
	CloseTransientFile(fd);

	if (n == KEY_LEN)
	{
		memcpy(master, buf, KEY_LEN);
		ok = true;
	}
	else if (n >= KEY_LEN * 2)
	{
		int len = (int) n;

		while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
			len--;
		if (len == KEY_LEN * 2)
		{
			ok = true;
			for (int i = 0; i < KEY_LEN; i++)
			{
				int hi = dci_hex_value((unsigned char) buf[2 * i]);
				int lo = dci_hex_value((unsigned char) buf[2 * i + 1]);

				if (hi < 0 || lo < 0)
				{
					ok = false;
					break;
				}
				master[i] = (unsigned char) (hi * 16 + lo);
			}
		}
	}
	explicit_bzero(buf, sizeof(buf));
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("the key file named by %s does not hold a key", setting_name),
				 errdetail("A key file holds 32 random bytes, or 64 hexadecimal digits.")));
	return true;
}

/* create the key file: exclusive, mode 0600, 32 random bytes */
static void
create_key_file(const char *path, unsigned char *master)
{
	int fd;

	if (!pg_strong_random(master, KEY_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random key")));
	fd = OpenTransientFilePerm(path, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY, S_IRUSR | S_IWUSR);
	if (fd < 0)
	{
		if (errno == EEXIST)
			return; /* another backend won the race: caller rereads */
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("could not create the key file named by dci_client.key_file: %m")));
	}
	if (write(fd, master, KEY_LEN) != KEY_LEN || pg_fsync(fd) != 0)
	{
		int save_errno = errno;

		CloseTransientFile(fd);
		unlink(path);
		errno = save_errno;
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("could not write the key file named by dci_client.key_file: %m")));
	}
	CloseTransientFile(fd);
	/* the statement being run may carry a secret: keep it out of the log */
	ereport(LOG,
			(errmsg("dci_client created a new encryption key in the file named by dci_client.key_file"),
			 errhidestmt(true),
			 errhidecontext(true)));
}

/* load the current key (creating it if asked) and the retired ones */
static void
load_keys(DciKeySet *keys, bool create)
{
	unsigned char master[KEY_LEN];
	char		 *path;

	memset(keys, 0, sizeof(*keys));
	path = key_path(dci_key_file && *dci_key_file ? dci_key_file : "dci_client.key");
	if (read_key_file("dci_client.key_file", path, master))
		keys->have_current = true;
	else if (create)
	{
		create_key_file(path, master);
		/* reread: if another backend created it first, its key is the key */
		keys->have_current = read_key_file("dci_client.key_file", path, master);
	}
	if (keys->have_current)
		derive_key(master, &keys->current);

	if (dci_retired_key_files && *dci_retired_key_files)
	{
		char	 *list = pstrdup(dci_retired_key_files);
		List	 *files;
		ListCell *lc;

		if (!SplitGUCList(list, ',', &files))
			ereport(ERROR,
					(errcode(ERRCODE_DCI_CONFIG),
					 errmsg("invalid list syntax in dci_client.retired_key_files")));
		foreach (lc, files)
		{
			char *rpath = key_path((char *) lfirst(lc));

			if (keys->nretired >= MAX_RETIRED_KEYS)
				break;
			if (read_key_file("dci_client.retired_key_files", rpath, master))
				derive_key(master, &keys->retired[keys->nretired++]);
		}
	}
	explicit_bzero(master, sizeof(master));
}

static const DciKey *
find_key(const DciKeySet *keys, const unsigned char *id)
{
	if (keys->have_current && memcmp(keys->current.id, id, KEY_ID_LEN) == 0)
		return &keys->current;
	for (int i = 0; i < keys->nretired; i++)
		if (memcmp(keys->retired[i].id, id, KEY_ID_LEN) == 0)
			return &keys->retired[i];
	return NULL;
}

/* length-prefixed text field, so no two field lists encode alike; NULL is "-" */
static void
append_field(StringInfo buf, const char *s)
{
	if (s == NULL)
		appendStringInfoString(buf, "-;");
	else
		appendStringInfo(buf, "%zu:%s;", strlen(s), s);
}

/* the tag over header, context and ciphertext */
static void
compute_tag(const DciKey *key, const unsigned char *header, const unsigned char *ct,
			size_t ctlen, const char *table, const char *column, int32 row_id,
			const char *binding, unsigned char *tag)
{
	StringInfoData buf;
	char		   rowid[16];

	snprintf(rowid, sizeof(rowid), "%d", row_id);
	initStringInfo(&buf);
	appendStringInfoString(&buf, "dci_client secret v1");
	appendBinaryStringInfo(&buf, (const char *) header, HEADER_LEN);
	append_field(&buf, table);
	append_field(&buf, column);
	append_field(&buf, rowid);
	append_field(&buf, binding);
	appendBinaryStringInfo(&buf, (const char *) ct, ctlen);
	hmac_sha256(key->mac, KEY_LEN, buf.data, buf.len, tag);
	pfree(buf.data);
}

char *
dci_secret_binding(const char *base_url, const char *auth_url, const char *cred_location,
				   bool verify_ssl, const char *ca_cert)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_field(&buf, base_url);
	append_field(&buf, auth_url);
	append_field(&buf, cred_location);
	append_field(&buf, verify_ssl ? "t" : "f");
	append_field(&buf, ca_cert);
	return buf.data;
}

static bytea *
encrypt_with(const DciKeySet *keys_in, const char *plaintext, const char *table,
			 const char *column, int32 row_id, const char *binding)
{
	const DciKeySet *keys_p = keys_in;
	unsigned char	 header[HEADER_LEN];
	bytea			*data;
	bytea			*key;
	bytea			*iv;
	bytea			*ct;
	bytea			*result;
	size_t			 ctlen;

	load_pgcrypto();

	header[0] = FORMAT_VERSION;
	memcpy(header + 1, keys_p->current.id, KEY_ID_LEN);
	if (!pg_strong_random(header + 1 + KEY_ID_LEN, IV_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random IV")));

	data = bytes_to_bytea(plaintext, strlen(plaintext));
	key = bytes_to_bytea(keys_p->current.enc, KEY_LEN);
	iv = bytes_to_bytea(header + 1 + KEY_ID_LEN, IV_LEN);
	ct = DatumGetByteaPP(DirectFunctionCall4(pgc_encrypt_iv, PointerGetDatum(data),
											 PointerGetDatum(key), PointerGetDatum(iv),
											 CStringGetTextDatum("aes-cbc/pad:pkcs")));
	wipe_bytea(data);
	wipe_bytea(key);
	pfree(iv);

	ctlen = VARSIZE_ANY_EXHDR(ct);
	result = palloc(VARHDRSZ + HEADER_LEN + ctlen + TAG_LEN);
	SET_VARSIZE(result, VARHDRSZ + HEADER_LEN + ctlen + TAG_LEN);
	memcpy(VARDATA(result), header, HEADER_LEN);
	memcpy(VARDATA(result) + HEADER_LEN, VARDATA_ANY(ct), ctlen);
	compute_tag(&keys_p->current, header, (unsigned char *) VARDATA_ANY(ct), ctlen,
				table, column, row_id, binding,
				(unsigned char *) VARDATA(result) + HEADER_LEN + ctlen);
	pfree(ct);
	return result;
}

bytea *
dci_secret_encrypt(const char *plaintext, const char *table, const char *column,
				   int32 row_id, const char *binding)
{
	DciKeySet keys;
	bytea	 *result;

	load_keys(&keys, true);
	result = encrypt_with(&keys, plaintext, table, column, row_id, binding);
	explicit_bzero(&keys, sizeof(keys));
	return result;
}

static char *
decrypt_with(const DciKeySet *keys, const bytea *ciphertext, const char *table,
			 const char *column, int32 row_id, const char *binding, const char *owner_desc,
			 DciError *err)
{
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(ciphertext);
	size_t				 len = VARSIZE_ANY_EXHDR(ciphertext);
	size_t				 ctlen;
	const DciKey		*key;
	unsigned char		 tag[TAG_LEN];
	bytea				*ct;
	bytea				*k;
	bytea				*iv;
	bytea				*plain;
	char				*result;
	char				*kid;

	if (len < HEADER_LEN + 16 + TAG_LEN || p[0] != FORMAT_VERSION ||
		(len - HEADER_LEN - TAG_LEN) % 16 != 0)
	{
		dci_error_set(err, ERRCODE_DCI_CONFIG, "could not decrypt %s of %s", column, owner_desc);
		dci_error_detail(err, "The stored value is not a dci_client ciphertext.");
		return NULL;
	}

	key = find_key(keys, p + 1);
	kid = key_id_hex(p + 1);
	if (key == NULL)
	{
		dci_error_set(err, ERRCODE_DCI_CONFIG, "could not decrypt %s of %s", column, owner_desc);
		dci_error_detail(err, "It was encrypted with key %s, which is neither in dci_client.key_file nor in dci_client.retired_key_files.", kid);
		dci_error_hint(err, "Install the key file holding key %s and reload the configuration, or store the secret again.", kid);
		return NULL;
	}

	ctlen = len - HEADER_LEN - TAG_LEN;
	compute_tag(key, p, p + HEADER_LEN, ctlen, table, column, row_id, binding, tag);
	if (CRYPTO_memcmp(tag, p + HEADER_LEN + ctlen, TAG_LEN) != 0)
	{
		dci_error_set(err, ERRCODE_DCI_CONFIG, "could not decrypt %s of %s", column, owner_desc);
		dci_error_detail(err, "The stored value does not authenticate under key %s: it was modified, copied from another row or column, or the URLs, credential location or TLS settings changed after it was stored.", kid);
		dci_error_hint(err, "Store the secret again.");
		return NULL;
	}

	load_pgcrypto();
	ct = bytes_to_bytea(p + HEADER_LEN, ctlen);
	k = bytes_to_bytea(key->enc, KEY_LEN);
	iv = bytes_to_bytea(p + 1 + KEY_ID_LEN, IV_LEN);
	plain = DatumGetByteaPP(DirectFunctionCall4(pgc_decrypt_iv, PointerGetDatum(ct),
												PointerGetDatum(k), PointerGetDatum(iv),
												CStringGetTextDatum("aes-cbc/pad:pkcs")));
	wipe_bytea(k);
	pfree(ct);
	pfree(iv);

	result = palloc(VARSIZE_ANY_EXHDR(plain) + 1);
	memcpy(result, VARDATA_ANY(plain), VARSIZE_ANY_EXHDR(plain));
	result[VARSIZE_ANY_EXHDR(plain)] = '\0';
	wipe_bytea(plain);
	return result;
}

char *
dci_secret_decrypt(const bytea *ciphertext, const char *table, const char *column,
				   int32 row_id, const char *binding, const char *owner_desc,
				   DciError *err)
{
	DciKeySet keys;
	char	 *result;

	load_keys(&keys, false);
	result = decrypt_with(&keys, ciphertext, table, column, row_id, binding, owner_desc, err);
	explicit_bzero(&keys, sizeof(keys));
	return result;
}

void
dci_secret_free(char *secret)
{
	if (secret != NULL)
	{
		explicit_bzero(secret, strlen(secret));
		pfree(secret);
	}
}

/* true when the ciphertext is under the current key */
static bool
under_key(const bytea *ciphertext, const DciKey *key)
{
	return VARSIZE_ANY_EXHDR(ciphertext) > HEADER_LEN &&
		   memcmp(VARDATA_ANY(ciphertext) + 1, key->id, KEY_ID_LEN) == 0;
}

/*
 * Re-encrypt one secret column of one table under the current key.
 * binding_columns: the columns (all text but verify_ssl) the secret is bound
 * to; the binding is computed here exactly as the trigger computes it, with
 * no SQL function resolved by name.
 */
static int
reencrypt_column(const DciKeySet *keys, Oid table_oid, const char *column,
				 const char *binding_columns, bool is_source)
{
	const char	  *table = get_rel_name(table_oid);
	char		  *qualified = dci_qualified_table_name(table_oid);
	char		  *select;
	char		  *update;
	int			   done = 0;
	uint64		   nrows;
	SPITupleTable *tuptable;

	select = psprintf("SELECT id, %s_encrypted, %s FROM %s WHERE %s_encrypted IS NOT NULL FOR UPDATE",
					  column, binding_columns, qualified, column);
	update = psprintf("UPDATE %s SET %s_encrypted = $1 WHERE id OPERATOR(pg_catalog.=) $2",
					  qualified, column);
	if (SPI_execute(select, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", select);
	nrows = SPI_processed;
	tuptable = SPI_tuptable;
	for (uint64 i = 0; i < nrows; i++)
	{
		HeapTuple tup = tuptable->vals[i];
		TupleDesc td = tuptable->tupdesc;
		bool	  isnull;
		int32	  id = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		bytea	 *ct = DatumGetByteaPP(SPI_getbinval(tup, td, 2, &isnull));
		char	 *binding;
		DciError  err = {0};
		char	 *plain;
		bytea	 *newct;
		Oid		  argtypes[2] = {BYTEAOID, INT4OID};
		Datum	  values[2];
		char	 *desc = psprintf("%s row %d", table, id);

		CHECK_FOR_INTERRUPTS();
		if (under_key(ct, &keys->current))
			continue;
		if (is_source)
		{
			Datum verify = SPI_getbinval(tup, td, 6, &isnull);

			binding = dci_secret_binding(SPI_getvalue(tup, td, 3), SPI_getvalue(tup, td, 4),
										 SPI_getvalue(tup, td, 5),
										 isnull ? true : DatumGetBool(verify),
										 SPI_getvalue(tup, td, 7));
		}
		else
			binding = dci_secret_binding(SPI_getvalue(tup, td, 3), SPI_getvalue(tup, td, 4),
										 NULL, true, NULL);
		plain = decrypt_with(keys, ct, table, column, id, binding, desc, &err);
		if (plain == NULL)
			dci_error_raise(&err);
		newct = encrypt_with(keys, plain, table, column, id, binding);
		dci_secret_free(plain);
		values[0] = PointerGetDatum(newct);
		values[1] = Int32GetDatum(id);
		if (SPI_execute_with_args(update, 2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "SPI_execute_with_args failed: %s", update);
		done++;
	}
	return done;
}

PG_FUNCTION_INFO_V1(dci_reencrypt_secrets);

/*
 * dci_reencrypt_secrets() returns integer: re-encrypt every stored secret
 * under the current key, in the caller's transaction.
 */
Datum
dci_reencrypt_secrets(PG_FUNCTION_ARGS)
{
	DciKeySet		   keys;
	Oid				   sources = dci_source_table_oid();
	Oid				   signing_keys = dci_signing_key_table_oid();
	const char		  *source_binding = "base_url, auth_url, credential_location, verify_ssl, ca_cert";
	int				   done = 0;
	DciPrivilegedState priv;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superusers may re-encrypt dci_client secrets")));

	/* re-encryption never mints a key: that would orphan every stored secret */
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot re-encrypt secrets during recovery")));
	load_keys(&keys, false);
	if (!keys.have_current)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("dci_client.key_file names no key"),
				 errhint("Install the new key file and reload the configuration before re-encrypting.")));
	/* the same pinned, restricted SPI as every privileged path */
	dci_spi_begin_privileged(&priv);
	done += reencrypt_column(&keys, sources, "client_secret", source_binding, true);
	done += reencrypt_column(&keys, sources, "bearer_token", source_binding, true);
	done += reencrypt_column(&keys, sources, "client_key", source_binding, true);
	if (get_attnum(sources, "callback_token_encrypted") != InvalidAttrNumber)
		done += reencrypt_column(&keys, sources, "callback_token", source_binding, true);
	done += reencrypt_column(&keys, signing_keys, "private_key", "key_id, algorithm", false);
	dci_spi_end_privileged(&priv);
	explicit_bzero(&keys, sizeof(keys));
	PG_RETURN_INT32(done);
}

PG_FUNCTION_INFO_V1(dci_secret_binding_sql);

/*
 * dci_secret_binding(...) returns text: the binding as SQL sees it, so
 * re-encryption computes exactly what the trigger computes.  Harmless to
 * expose (it holds no secret), but not granted to PUBLIC.
 */
Datum
dci_secret_binding_sql(PG_FUNCTION_ARGS)
{
	char *args[5];

	for (int i = 0; i < 5; i++)
	{
		if (i == 3)
			continue;
		args[i] = PG_ARGISNULL(i) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(i));
	}
	PG_RETURN_TEXT_P(cstring_to_text(dci_secret_binding(args[0], args[1], args[2],
														PG_ARGISNULL(3) ? true : PG_GETARG_BOOL(3),
														args[4])));
}
