/*
 * dci_client.h
 *		What every module of the extension shares: the version, the
 *		SQLSTATEs and the header-list type.  Each module declares its own
 *		interface in its own header (README, "Layout").
 */
#ifndef DCI_CLIENT_H
#define DCI_CLIENT_H

#include "postgres.h"

/* shmem_request_hook, InitMaterializedSRF, MarkGUCPrefixReserved */
#if PG_VERSION_NUM < 150000
#error "dci_client needs PostgreSQL 15 or later"
#endif

#define DCI_CLIENT_VERSION "0.2"

/* SQLSTATEs (README, "Errors") */
#define ERRCODE_DCI_CONFIG		MAKE_SQLSTATE('D', 'C', '0', '0', '1')
#define ERRCODE_DCI_AUTH		MAKE_SQLSTATE('D', 'C', '0', '0', '2')
#define ERRCODE_DCI_TRANSPORT	MAKE_SQLSTATE('D', 'C', '0', '0', '3')
#define ERRCODE_DCI_TIMEOUT		MAKE_SQLSTATE('D', 'C', '0', '0', '4')
#define ERRCODE_DCI_TOO_LARGE	MAKE_SQLSTATE('D', 'C', '0', '0', '5')
#define ERRCODE_DCI_BAD_JSON	MAKE_SQLSTATE('D', 'C', '0', '0', '6')
#define ERRCODE_DCI_REJECTED	MAKE_SQLSTATE('D', 'C', '0', '0', '7')
#define ERRCODE_DCI_SIGNATURE	MAKE_SQLSTATE('D', 'C', '0', '0', '8')
#define ERRCODE_DCI_UNAVAILABLE MAKE_SQLSTATE('D', 'C', '0', '0', '9')

/*
 * Request headers: validated "Name: value" pairs (palloc'd), made by json.c
 * and sent by request.c.  Limits of extra_headers and of a call's headers
 * (22023 beyond them).
 */
#define DCI_MAX_HEADERS		 100
#define DCI_MAX_HEADER_NAME	 256
#define DCI_MAX_HEADER_VALUE 8192
typedef struct DciHeaders
{
	int	   n;
	char **names;
	char **values;
} DciHeaders;

#endif /* DCI_CLIENT_H */
