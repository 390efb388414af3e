/*
 * http.c
 *		HTTP transfers with libcurl inside a backend.
 *
 * One multi handle and one easy handle per backend, reused for every call,
 * so connections (and TLS sessions) are kept per origin.  Transfers are
 * driven with curl_multi_socket_action and waited for with poll() in slices
 * of at most WAIT_SLICE_MS: PostgreSQL's signals interrupt the poll, so a
 * cancel or statement_timeout ends a transfer at once (57014), and
 * pg_stat_activity shows the wait as wait_event_type "Extension".
 *
 * libcurl callbacks never raise: they record what happened in TransferState
 * and return a failure code; errors are raised after libcurl returns.
 * curl error codes become SQLSTATEs in one place: http_failure.c.
 */
#include "dci_client.h"

#include <math.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <curl/curl.h>

/* CURLOPT_PROTOCOLS_STR (7.85), CURLOPT_PREREQFUNCTION (7.80) */
#if LIBCURL_VERSION_NUM < 0x075500
#error "dci_client needs libcurl 7.85 or later"
#endif

#include "access/xact.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "deadline.h"
#include "errors.h"
#include "host_rules.h"
#include "http.h"
#include "http_failure.h"
#include "http_util.h"
#include "http_headers.h"
#include "settings.h"
#include "source.h"

/* header text per response and distinct header names, against floods */
#define MAX_HEADER_BYTES (256 * 1024)
#define MAX_HEADER_COUNT 500
/* buffers larger than this are released after the call */
#define KEEP_BUFFER_BYTES (1024 * 1024)
/* a few per transfer: connects race over IPv4 and IPv6 */
#define MAX_SOCKETS (8 + 2 * DCI_HTTP_MAX_PARALLEL)
/* longest uninterrupted wait: bounds how late a cancel can be noticed */
#define WAIT_SLICE_MS 50

/* what one transfer's callbacks saw (one per easy handle) */
typedef struct TransferState
{
	/* response body */
	char		 *body;
	size_t		  body_len;
	size_t		  body_cap;
	size_t		  max_bytes;
	DciHeaderList headers;

	/* what the callbacks saw */
	bool too_large;
	bool headers_too_large;
	bool out_of_memory;
	bool blocked_address;
	bool check_addresses;
	int	 sends; /* times the request was about to be sent */
	char blocked[INET6_ADDRSTRLEN + 8];
} TransferState;

/*
 * What the options of the last transfer of a handle depended on besides URL,
 * headers, body and timeouts: when it is unchanged, the handle keeps them
 * and only those five are set (the warm path); otherwise it is reset and
 * set anew.
 */
typedef struct OptionsKey
{
	uint64		source_serial; /* 0: no source */
	const char *method;		   /* one of request.c's constant strings */
	bool		has_body;
	char		proxy[256];
	char		user_agent[256];
	int			max_bytes;
	bool		no_client_cert;
	bool		valid;
} OptionsKey;

/* one easy handle and its state; the multi's connection cache serves all */
typedef struct Transfer
{
	CURL		 *easy;
	bool		  active;	/* added to the multi */
	bool		  finished; /* libcurl reported it done */
	CURLcode	  result;
	TransferState ts;
	OptionsKey	  last_options;
	char		  errbuf[CURL_ERROR_SIZE];
} Transfer;

/* sockets and timer libcurl asked us to watch, for all transfers of the multi */
typedef struct MultiState
{
	int			  nsockets;
	curl_socket_t sockets[MAX_SOCKETS];
	int			  socket_what[MAX_SOCKETS];
	long		  timer_ms; /* -1: none */
	bool		  socket_overflow;
	int			  active; /* transfers added to the multi */
} MultiState;

static CURLM	 *multi = NULL;
static uint64	  handles_rules_generation = 0; /* allowed_hosts the handles were made under */
static bool		  xact_callback_registered = false;
static MultiState ms = {.timer_ms = -1};
/* the single-call path's handle (dci_http_exchange) */
static Transfer main_tr;
/* the handles of dci_http_run_many, made on first use and kept */
static Transfer pool_tr[DCI_HTTP_MAX_PARALLEL];

/* ---- libcurl callbacks: no ereport, no palloc ---- */

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	TransferState *t = &((Transfer *) userdata)->ts;
	size_t		   n = size * nmemb;

	if (t->body_len + n > t->max_bytes)
	{
		t->too_large = true;
		return 0; /* aborts the transfer: nothing more is read */
	}
	if (t->body_len + n + 1 > t->body_cap)
	{
		size_t cap = Max(t->body_cap * 2, t->body_len + n + 1);
		char  *p;

		cap = Max(cap, 16384);
		p = realloc(t->body, cap);
		if (p == NULL)
		{
			t->out_of_memory = true;
			return 0;
		}
		t->body = p;
		t->body_cap = cap;
	}
	memcpy(t->body + t->body_len, ptr, n);
	t->body_len += n;
	return n;
}

static size_t
header_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	TransferState *t = &((Transfer *) userdata)->ts;
	size_t		   n = size * nmemb;

	switch (header_list_feed(&t->headers, ptr, n, MAX_HEADER_BYTES, MAX_HEADER_COUNT))
	{
		case HEADER_OK:
			return n;
		case HEADER_TOO_LARGE:
			t->headers_too_large = true;
			return 0;
		default:
			t->out_of_memory = true;
			return 0;
	}
}

static int
socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	int i;

	for (i = 0; i < ms.nsockets; i++)
		if (ms.sockets[i] == s)
			break;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < ms.nsockets)
		{
			ms.sockets[i] = ms.sockets[ms.nsockets - 1];
			ms.socket_what[i] = ms.socket_what[ms.nsockets - 1];
			ms.nsockets--;
		}
		return 0;
	}
	if (i == ms.nsockets)
	{
		if (ms.nsockets == MAX_SOCKETS)
		{
			ms.socket_overflow = true;
			return -1;
		}
		ms.nsockets++;
	}
	ms.sockets[i] = s;
	ms.socket_what[i] = what;
	return 0;
}

static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	ms.timer_ms = timeout_ms;
	return 0;
}

/*
 * libcurl silently resends a request whose reused connection died before
 * any answer, whatever the method.  That would resend a POST after a reset
 * and retry beyond max_retries: refuse the second send and let the retry
 * rules of dci_http_exchange decide.
 */
static int
prereq_cb(void *clientp, char *conn_primary_ip, char *conn_local_ip,
		  int conn_primary_port, int conn_local_port)
{
	TransferState *t = &((Transfer *) clientp)->ts;

	/*
	 * allowed_hosts once more, on the peer of this very request: a kept-alive
	 * connection was checked when it was opened, perhaps under older rules.
	 */
	if (t->check_addresses && conn_primary_ip != NULL)
	{
		struct sockaddr_storage ss;

		memset(&ss, 0, sizeof(ss));
		if (inet_pton(AF_INET, conn_primary_ip, &((struct sockaddr_in *) &ss)->sin_addr) == 1)
			ss.ss_family = AF_INET;
		else if (inet_pton(AF_INET6, conn_primary_ip, &((struct sockaddr_in6 *) &ss)->sin6_addr) == 1)
			ss.ss_family = AF_INET6;
		if (ss.ss_family == 0 || !host_rules_allow_address(dci_host_rules(), (struct sockaddr *) &ss))
		{
			snprintf(t->blocked, sizeof(t->blocked), "%s", conn_primary_ip);
			t->blocked_address = true;
			return CURL_PREREQFUNC_ABORT;
		}
	}
	return ++t->sends > 1 ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

/* the last check of allowed_hosts: the address actually connected to */
static curl_socket_t
opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
	TransferState *t = &((Transfer *) clientp)->ts;

	if (t->check_addresses && !host_rules_allow_address(dci_host_rules(), &addr->addr))
	{
		char host[INET6_ADDRSTRLEN] = "?";

		if (addr->family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *) &addr->addr)->sin_addr, host, sizeof(host));
		else if (addr->family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &addr->addr)->sin6_addr, host, sizeof(host));
		snprintf(t->blocked, sizeof(t->blocked), "%s", host);
		t->blocked_address = true;
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype, addr->protocol);
}

/* ---- handle lifetime ---- */

static void
end_transfer(Transfer *t)
{
	if (t->active)
	{
		/*
		 * Removing a handle whose transfer is not done closes its connection:
		 * nothing half read goes back to the pool.
		 */
		curl_multi_remove_handle(multi, t->easy);
		t->active = false;
		ms.active--;
	}
	t->finished = false;
	if (ms.active <= 0)
	{
		ms.active = 0;
		ms.nsockets = 0;
		ms.timer_ms = -1;
	}
}

/* keep small buffers for the next call, give big ones back */
static void
trim_buffers(Transfer *t)
{
	if (t->ts.body_cap > KEEP_BUFFER_BYTES)
	{
		free(t->ts.body);
		t->ts.body = NULL;
		t->ts.body_cap = 0;
		t->ts.body_len = 0;
	}
}

static void
end_all_transfers(void)
{
	if (multi == NULL)
		return;
	end_transfer(&main_tr);
	trim_buffers(&main_tr);
	for (int i = 0; i < DCI_HTTP_MAX_PARALLEL; i++)
		if (pool_tr[i].easy != NULL)
		{
			end_transfer(&pool_tr[i]);
			trim_buffers(&pool_tr[i]);
		}
}

/* an aborted transaction may leave transfers half done: drop them */
static void
xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		end_all_transfers();
}

/*
 * The same for a savepoint or an EXCEPTION block: the request bodies lived
 * in the memory the subtransaction frees, and a transfer left in the multi
 * handle would go on sending from it at the next call.
 */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		end_all_transfers();
}

void
dci_http_abort_all(void)
{
	end_all_transfers();
}

static void
make_easy(Transfer *t)
{
	if (t->easy == NULL)
	{
		t->easy = curl_easy_init();
		if (t->easy == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not create a libcurl handle")));
		t->last_options.valid = false;
	}
}

static void
ensure_handles(void)
{
	/* allowed_hosts changed: no pooled connection may outlive the old rules */
	if (multi != NULL && handles_rules_generation != dci_host_rules_generation())
	{
		end_all_transfers();
		curl_easy_cleanup(main_tr.easy);
		main_tr.easy = NULL;
		for (int i = 0; i < DCI_HTTP_MAX_PARALLEL; i++)
			if (pool_tr[i].easy != NULL)
			{
				curl_easy_cleanup(pool_tr[i].easy);
				pool_tr[i].easy = NULL;
			}
		curl_multi_cleanup(multi);
		multi = NULL;
	}
	handles_rules_generation = dci_host_rules_generation();
	if (multi == NULL)
	{
		multi = curl_multi_init();
		if (multi == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not create a libcurl multi handle")));
		curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
		curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
		/* several transfers may share an origin's connections (HTTP/2 streams too) */
		curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) DCI_HTTP_MAX_PARALLEL);
		curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) DCI_HTTP_MAX_PARALLEL + 4);
		ms.timer_ms = -1;
		ms.active = 0;
		ms.nsockets = 0;
	}
	make_easy(&main_tr);
	if (!xact_callback_registered)
	{
		RegisterXactCallback(xact_callback, NULL);
		RegisterSubXactCallback(subxact_callback, NULL);
		xact_callback_registered = true;
	}
}

/* ---- one attempt ---- */

static bool
options_unchanged(Transfer *t, const DciHttpRequest *req)
{
	const char *proxy = dci_proxy ? dci_proxy : "";
	const char *ua = dci_user_agent ? dci_user_agent : "";
	OptionsKey *k = &t->last_options;

	return k->valid &&
		   k->source_serial == (req->source ? req->source->serial : 0) &&
		   strcmp(k->method, req->method) == 0 &&
		   k->has_body == (req->body != NULL) &&
		   k->no_client_cert == req->no_client_cert &&
		   strcmp(k->proxy, proxy) == 0 &&
		   strcmp(k->user_agent, ua) == 0 &&
		   k->max_bytes == dci_max_response_bytes;
}

static void
remember_options(Transfer *t, const DciHttpRequest *req)
{
	const char *proxy = dci_proxy ? dci_proxy : "";
	const char *ua = dci_user_agent ? dci_user_agent : "";
	OptionsKey *k = &t->last_options;

	/* settings too long to compare are simply never reused */
	k->valid = strlen(proxy) < sizeof(k->proxy) && strlen(ua) < sizeof(k->user_agent);
	k->source_serial = req->source ? req->source->serial : 0;
	k->method = req->method;
	k->has_body = (req->body != NULL);
	k->no_client_cert = req->no_client_cert;
	strlcpy(k->proxy, proxy, sizeof(k->proxy));
	strlcpy(k->user_agent, ua, sizeof(k->user_agent));
	k->max_bytes = dci_max_response_bytes;
}

/* everything but URL, headers, body and timeouts */
static void
set_fixed_options(Transfer *t, const DciHttpRequest *req)
{
	const DciSource *src = req->source;
	CURL			*easy = t->easy;

	curl_easy_reset(easy);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, t);
	curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, prereq_cb);
	curl_easy_setopt(easy, CURLOPT_PREREQDATA, t);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, dci_user_agent);
	curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, ""); /* all libcurl decodes */
	curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) dci_max_response_bytes);
	/* "" disables the proxy environment variables too */
	curl_easy_setopt(easy, CURLOPT_PROXY, dci_proxy ? dci_proxy : "");
	curl_easy_setopt(easy, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, (src == NULL || src->verify_ssl) ? 1L : 0L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, (src == NULL || src->verify_ssl) ? 2L : 0L);
	if (src && src->ca_cert)
	{
		struct curl_blob blob = {src->ca_cert, strlen(src->ca_cert), CURL_BLOB_NOCOPY};

		curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &blob);
	}
	if (src && src->client_cert_tls && !req->no_client_cert)
	{
		/* mutual TLS from memory: the key never touches the disk */
		struct curl_blob cert = {src->client_cert_tls, strlen(src->client_cert_tls), CURL_BLOB_NOCOPY};
		struct curl_blob key = {src->client_key, strlen(src->client_key), CURL_BLOB_NOCOPY};

		curl_easy_setopt(easy, CURLOPT_SSLCERT_BLOB, &cert);
		curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(easy, CURLOPT_SSLKEY_BLOB, &key);
		curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM");
	}

	if (strcmp(req->method, "GET") == 0 && req->body == NULL)
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	else if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	else if (strcmp(req->method, "POST") != 0)
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
	remember_options(t, req);
}

static void
set_options(Transfer *t, const DciHttpRequest *req, struct curl_slist *headers, long timeout_ms)
{
	long  connect_ms = Min((long) dci_connect_timeout_ms, timeout_ms);
	CURL *easy = t->easy;

	if (!options_unchanged(t, req))
		set_fixed_options(t, req);
	curl_easy_setopt(easy, CURLOPT_URL, req->url);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, Max(timeout_ms, 1L));
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, Max(connect_ms, 1L));
	if (strcmp(req->method, "HEAD") != 0 &&
		(req->body != NULL || strcmp(req->method, "POST") == 0))
	{
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body ? req->body : "");
	}
}

/*
 * Wait for libcurl's sockets or its timer, at most max_ms.  A plain poll()
 * is enough to be interruptible: PostgreSQL's signals (cancel,
 * statement_timeout, terminate, barriers) interrupt it with EINTR, and a
 * signal that slips in just before it is noticed after at most
 * WAIT_SLICE_MS.  One syscall per wait keeps the warm path close to a bare
 * libcurl loop.
 */
static void
wait_for_events(long max_ms)
{
	struct pollfd fds[MAX_SOCKETS];
	long		  timeout = ms.timer_ms;
	int			  nfds = 0;
	int			  rc;
	int			  running;

	if (timeout < 0 || timeout > WAIT_SLICE_MS)
		timeout = WAIT_SLICE_MS;
	if (max_ms >= 0 && timeout > max_ms)
		timeout = max_ms;
	for (int i = 0; i < ms.nsockets; i++)
	{
		short ev = 0;

		if (ms.socket_what[i] & CURL_POLL_IN)
			ev |= POLLIN;
		if (ms.socket_what[i] & CURL_POLL_OUT)
			ev |= POLLOUT;
		if (ev == 0)
			continue;
		fds[nfds].fd = ms.sockets[i];
		fds[nfds].events = ev;
		fds[nfds].revents = 0;
		nfds++;
	}

	pgstat_report_wait_start(PG_WAIT_EXTENSION);
	rc = poll(fds, nfds, (int) timeout);
	pgstat_report_wait_end();

	if (rc < 0)
	{
		if (errno != EINTR)
			ereport(ERROR,
					(errcode(ERRCODE_DCI_TRANSPORT),
					 errmsg("could not wait for an HTTP transfer: %m")));
		CHECK_FOR_INTERRUPTS();
		return;
	}
	if (!PostmasterIsAlive())
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("terminating connection due to unexpected postmaster exit")));
	if (rc == 0)
	{
		/* the timer is due (or the slice ended): libcurl checks its timeouts */
		ms.timer_ms = -1;
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
		return;
	}
	for (int i = 0; i < nfds; i++)
	{
		int flags = 0;

		if (fds[i].revents == 0)
			continue;
		if (fds[i].revents & (POLLIN | POLLHUP))
			flags |= CURL_CSELECT_IN;
		if (fds[i].revents & POLLOUT)
			flags |= CURL_CSELECT_OUT;
		if (fds[i].revents & (POLLERR | POLLNVAL))
			flags |= CURL_CSELECT_ERR;
		curl_multi_socket_action(multi, fds[i].fd, flags, &running);
	}
}

/* hand libcurl's "done" messages to their transfers, whichever they are */
static void
collect_done(void)
{
	CURLMsg *msg;
	int		 queued;

	while ((msg = curl_multi_info_read(multi, &queued)) != NULL)
	{
		Transfer *t = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t) == CURLE_OK && t != NULL)
		{
			t->finished = true;
			t->result = msg->data.result;
		}
	}
}

/* add a transfer to the multi (its previous one ended) */
static void
start_transfer(Transfer *t, const DciHttpRequest *req, struct curl_slist *headers, long timeout_ms)
{
	CURLMcode mc;
	int		  running;

	end_transfer(t);
	header_list_clear(&t->ts.headers);
	t->ts.body_len = 0;
	t->ts.max_bytes = (size_t) dci_max_response_bytes;
	t->ts.too_large = t->ts.headers_too_large = t->ts.out_of_memory = false;
	t->ts.blocked_address = false;
	t->ts.sends = 0;
	/* through a proxy, the address connected to is the proxy's own */
	t->ts.check_addresses = dci_host_rules() != NULL && (dci_proxy == NULL || *dci_proxy == '\0');
	t->errbuf[0] = '\0';
	if (ms.active == 0)
		ms.socket_overflow = false;

	set_options(t, req, headers, timeout_ms);
	mc = curl_multi_add_handle(multi, t->easy);
	if (mc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_TRANSPORT),
				 errmsg("could not start an HTTP transfer: %s", curl_multi_strerror(mc))));
	t->active = true;
	t->finished = false;
	ms.active++;
	curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

/* run one transfer to its end; returns libcurl's result */
static CURLcode
run_transfer(Transfer *t, const DciHttpRequest *req, struct curl_slist *headers, long timeout_ms)
{
	int running;

	start_transfer(t, req, headers, timeout_ms);
	for (;;)
	{
		collect_done();
		if (t->finished)
			break;
		CHECK_FOR_INTERRUPTS();
		if (ms.timer_ms == 0)
		{
			ms.timer_ms = -1;
			curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
			continue;
		}
		wait_for_events(-1);
	}
	return t->result;
}

/* classify a finished attempt and describe a failure in err (http_failure.c) */
static DciOutcome
describe_failure(Transfer *t, const DciHttpRequest *req, CURLcode rc, DciError *err)
{
	DciTransferFacts f = {0};
	curl_off_t		 v;
	CURL			*easy = t->easy;

	if (t->ts.out_of_memory)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while receiving a response from \"%s\"", dci_url_origin(req->url))));
	f.source_code = req->source ? req->source->code : "?";
	f.origin = dci_url_origin(req->url);
	f.curl_error = t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc);
	f.blocked_address = t->ts.blocked_address;
	f.blocked = t->ts.blocked;
	f.too_large = t->ts.too_large;
	f.max_response_bytes = dci_max_response_bytes;
	f.headers_too_large = t->ts.headers_too_large;
	f.max_header_bytes = MAX_HEADER_BYTES;
	f.max_header_count = MAX_HEADER_COUNT;
	f.resent = t->ts.sends > 1;
	f.socket_overflow = ms.socket_overflow;
	f.max_sockets = MAX_SOCKETS;
	f.deadline_passed = GetCurrentTimestamp() >= req->deadline;
	if (rc == CURLE_PEER_FAILED_VERIFICATION)
		curl_easy_getinfo(easy, CURLINFO_SSL_VERIFYRESULT, &f.verify_result);
	if (curl_easy_getinfo(easy, CURLINFO_NAMELOOKUP_TIME_T, &v) == CURLE_OK)
		f.dns_ms = v / 1000.0;
	if (curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &v) == CURLE_OK)
		f.connect_ms = v / 1000.0;
	if (curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &v) == CURLE_OK)
		f.tls_ms = v / 1000.0;
	if (curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &v) == CURLE_OK)
		f.total_ms = v / 1000.0;
	return dci_describe_failure(rc, &f, err);
}

/* the budget of an attempt that would start now, or false with err set */
static bool
attempt_budget(const DciHttpRequest *req, long *remaining, DciError *err)
{
	*remaining = dci_ms_until(req->deadline);
	if (*remaining > 0)
		return true;
	dci_error_set(err, ERRCODE_DCI_TIMEOUT, "call to data source \"%s\" (\"%s\") ran out of time",
				  req->source ? req->source->code : "?", dci_url_origin(req->url));
	dci_error_hint(err, "The budget is the data source's timeout_ms, or dci_client.timeout_ms.");
	return false;
}

/* the outcome of a finished transfer; the handle leaves the multi */
static DciOutcome
finish_attempt(Transfer *t, const DciHttpRequest *req, long *status, DciError *err)
{
	DciOutcome o;

	if (t->result == CURLE_OK)
	{
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, status);
		o = DCI_OUTCOME_HTTP;
	}
	else
		o = describe_failure(t, req, t->result, err);
	end_transfer(t);
	return o;
}

static DciOutcome
attempt(const DciHttpRequest *req, struct curl_slist *headers, long *status, DciError *err)
{
	long remaining;

	if (!attempt_budget(req, &remaining, err))
		return DCI_OUTCOME_FAILED;
	(void) run_transfer(&main_tr, req, headers, remaining);
	return finish_attempt(&main_tr, req, status, err);
}

/* allowed_hosts, by name, before anything is sent */
static bool
host_allowed(const DciHttpRequest *req, DciError *err)
{
	char *host;

	if (dci_host_rules() == NULL)
		return true;
	host = dci_url_host(req->url);
	if (host != NULL && host_rules_allow_host(dci_host_rules(), host))
		return true;
	dci_error_set(err, ERRCODE_DCI_CONFIG,
				  "host \"%s\" of data source \"%s\" is not allowed by dci_client.allowed_hosts",
				  host ? host : "?", req->source ? req->source->code : "?");
	return false;
}

/* the backoff before the next attempt, or -1: no further attempt */
static long
retry_delay(const DciHttpRequest *req, Transfer *t, int attempts, DciOutcome o, long status)
{
	long delay;

	if (attempts > dci_max_retries || !dci_retryable(o, status, req->idempotent))
		return -1;
	delay = dci_retry_delay_ms(attempts, (status == 429 || status == 503) ? header_list_get(&t->ts.headers, "retry-after") : NULL);
	/* a wait that would outlast the budget: answer with what we have */
	if (delay >= dci_ms_until(req->deadline))
		return -1;
	return delay;
}

bool
dci_http_exchange(const DciHttpRequest *req, DciHttpResponse *resp)
{
	TimestampTz		   start = GetCurrentTimestamp();
	struct curl_slist *headers = NULL;
	DciOutcome		   o = DCI_OUTCOME_FAILED;
	long			   status = 0;
	TransferState	  *ts = &main_tr.ts;

	memset(resp, 0, sizeof(*resp));
	ensure_handles();

	if (!host_allowed(req, &resp->error))
		return false;

	headers = dci_header_slist(req->headers);

	for (resp->attempts = 1;; resp->attempts++)
	{
		long delay;

		memset(&resp->error, 0, sizeof(resp->error));
		status = 0;
		o = attempt(req, headers, &status, &resp->error);
		delay = retry_delay(req, &main_tr, resp->attempts, o, status);
		if (delay < 0)
			break;
		/* sleep the whole delay: a latch wake that is no interrupt does not shorten it */
		{
			TimestampTz wake_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
			long		left;

			while ((left = dci_ms_until(wake_at)) > 0)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 left, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
		}
		CHECK_FOR_INTERRUPTS();
	}

	resp->elapsed_ms = (GetCurrentTimestamp() - start) / 1000.0;
	if (o != DCI_OUTCOME_HTTP)
	{
		trim_buffers(&main_tr);
		return false;
	}

	resp->status = status;
	resp->body = palloc(ts->body_len + 1);
	if (ts->body_len)
		memcpy(resp->body, ts->body, ts->body_len);
	resp->body[ts->body_len] = '\0';
	resp->body_len = ts->body_len;
	resp->headers = &ts->headers;
	trim_buffers(&main_tr);
	return true;
}

/* ---- several exchanges at once ---- */

typedef struct Slot
{
	Transfer		  *t;
	bool			   busy;	/* holds a request */
	bool			   waiting; /* in its backoff, until wake_at */
	TimestampTz		   wake_at;
	DciHttpRequest	  *req;
	void			  *tag;
	struct curl_slist *headers;
	TimestampTz		   start;
	int				   attempts;
} Slot;

static Slot slots[DCI_HTTP_MAX_PARALLEL];

/* free what a slot holds outside palloc (also after an error: see below) */
static void
release_slot(Slot *sl)
{
	if (sl->headers)
		dci_header_slist_free(sl->headers);
	sl->headers = NULL;
	sl->busy = sl->waiting = false;
	sl->req = NULL;
	sl->tag = NULL;
}

/* start the slot's next attempt; false (err set) when its budget is gone */
static bool
slot_attempt(Slot *sl, DciError *err)
{
	long remaining;

	sl->waiting = false;
	if (!attempt_budget(sl->req, &remaining, err))
		return false;
	start_transfer(sl->t, sl->req, sl->headers, remaining);
	return true;
}

/* the slot's request is over: tell the caller, then free the slot */
static void
slot_done(Slot *sl, DciHttpDoneFn done, void *arg, bool ok, long status, DciError *err)
{
	DciHttpResponse resp;
	TransferState  *ts = &sl->t->ts;
	DciHttpRequest *req = sl->req;
	void		   *tag = sl->tag;

	memset(&resp, 0, sizeof(resp));
	resp.attempts = sl->attempts;
	resp.elapsed_ms = (GetCurrentTimestamp() - sl->start) / 1000.0;
	if (ok)
	{
		/* the body is the handle's buffer: valid until the callback returns */
		if (ts->body == NULL)
			resp.body = "";
		else
		{
			ts->body[ts->body_len] = '\0'; /* write_cb kept room for it */
			resp.body = ts->body;
		}
		resp.body_len = ts->body_len;
		resp.status = status;
		resp.headers = &ts->headers;
	}
	else
		resp.error = *err;
	if (sl->headers)
		dci_header_slist_free(sl->headers);
	sl->headers = NULL;
	/* the slot stays busy while the callback runs (it may start other calls) */
	done(arg, req, tag, ok, &resp);
	trim_buffers(sl->t);
	release_slot(sl);
}

void
dci_http_run_many(int concurrency, DciHttpNextFn next, DciHttpDoneFn done, void *arg)
{
	bool more = true;
	int	 running;

	ensure_handles();
	concurrency = Max(1, Min(concurrency, DCI_HTTP_MAX_PARALLEL));
	/* a previous run that ended in an error (perhaps with more handles) leaves nothing in flight */
	for (int i = 0; i < DCI_HTTP_MAX_PARALLEL; i++)
	{
		if (i >= concurrency && pool_tr[i].easy == NULL)
			continue;
		make_easy(&pool_tr[i]);
		end_transfer(&pool_tr[i]);
		slots[i].t = &pool_tr[i];
		/* header lists left by a run that ended in an error are freed here */
		release_slot(&slots[i]);
	}

	for (;;)
	{
		int			busy = 0;
		long		max_wait = -1;
		TimestampTz now;
		bool		ended_any = false; /* its callback may have queued more */

		/* fill the idle slots (a finished request may have queued more: ask again) */
		more = true;
		for (int i = 0; i < concurrency && more; i++)
		{
			Slot	*sl = &slots[i];
			DciError err = {0};

			if (sl->busy)
				continue;
			if (!next(arg, &sl->req, &sl->tag))
			{
				more = false;
				break;
			}
			sl->busy = true;
			sl->attempts = 1;
			sl->start = GetCurrentTimestamp();
			if (!host_allowed(sl->req, &err))
			{
				slot_done(sl, done, arg, false, 0, &err);
				continue;
			}
			sl->headers = dci_header_slist_new(sl->req->headers);
			if (!slot_attempt(sl, &err))
				slot_done(sl, done, arg, false, 0, &err);
		}

		collect_done();
		now = GetCurrentTimestamp();
		for (int i = 0; i < concurrency; i++)
		{
			Slot	  *sl = &slots[i];
			DciError   err = {0};
			long	   status = 0;
			DciOutcome o;
			long	   delay;

			if (!sl->busy)
				continue;
			if (sl->waiting)
			{
				if (now >= sl->wake_at)
				{
					sl->attempts++;
					if (!slot_attempt(sl, &err))
					{
						slot_done(sl, done, arg, false, 0, &err);
						ended_any = true;
					}
				}
				continue;
			}
			if (!sl->t->finished)
				continue;
			o = finish_attempt(sl->t, sl->req, &status, &err);
			delay = retry_delay(sl->req, sl->t, sl->attempts, o, status);
			if (delay >= 0)
			{
				sl->waiting = true;
				sl->wake_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
				continue;
			}
			slot_done(sl, done, arg, o == DCI_OUTCOME_HTTP, status, &err);
			ended_any = true;
		}

		for (int i = 0; i < concurrency; i++)
			if (slots[i].busy)
			{
				busy++;
				if (slots[i].waiting)
				{
					long left = dci_ms_until(slots[i].wake_at);

					if (max_wait < 0 || left < max_wait)
						max_wait = left;
				}
				else if (slots[i].t->finished)
					max_wait = 0;
			}
		if (busy == 0 && !more && !ended_any)
			break;
		CHECK_FOR_INTERRUPTS();
		if ((busy < concurrency && more) || ended_any)
			continue;
		if (max_wait == 0)
			continue;
		if (ms.timer_ms == 0)
		{
			ms.timer_ms = -1;
			curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
			continue;
		}
		wait_for_events(max_wait);
	}
}
