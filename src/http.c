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
#define MAX_SOCKETS		  8
/* longest uninterrupted wait: bounds how late a cancel can be noticed */
#define WAIT_SLICE_MS 50

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

	/* sockets and timer libcurl asked us to watch */
	int			  nsockets;
	curl_socket_t sockets[MAX_SOCKETS];
	int			  socket_what[MAX_SOCKETS];
	long		  timer_ms; /* -1: none */
	bool		  socket_overflow;
} TransferState;

static CURLM		*multi = NULL;
static CURL			*easy = NULL;
static uint64		 handles_rules_generation = 0; /* allowed_hosts the handles were made under */
static bool			 transfer_active = false;
static bool			 xact_callback_registered = false;
static TransferState ts;
static char			 curl_errbuf[CURL_ERROR_SIZE];

/*
 * What the options of the last transfer depended on besides URL, headers,
 * body and timeouts: when it is unchanged, the handle keeps them and only
 * those five are set (the warm path); otherwise it is reset and set anew.
 */
typedef struct OptionsKey
{
	uint64		source_serial; /* 0: no source */
	const char *method;		   /* one of request.c's constant strings */
	bool		has_body;
	char		proxy[256];
	char		user_agent[256];
	int			max_bytes;
	bool		valid;
} OptionsKey;

static OptionsKey last_options;

/* ---- libcurl callbacks: no ereport, no palloc ---- */

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	size_t n = size * nmemb;

	if (ts.body_len + n > ts.max_bytes)
	{
		ts.too_large = true;
		return 0; /* aborts the transfer: nothing more is read */
	}
	if (ts.body_len + n + 1 > ts.body_cap)
	{
		size_t cap = Max(ts.body_cap * 2, ts.body_len + n + 1);
		char  *p;

		cap = Max(cap, 16384);
		p = realloc(ts.body, cap);
		if (p == NULL)
		{
			ts.out_of_memory = true;
			return 0;
		}
		ts.body = p;
		ts.body_cap = cap;
	}
	memcpy(ts.body + ts.body_len, ptr, n);
	ts.body_len += n;
	return n;
}

static size_t
header_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	size_t n = size * nmemb;

	switch (header_list_feed(&ts.headers, ptr, n, MAX_HEADER_BYTES, MAX_HEADER_COUNT))
	{
		case HEADER_OK:
			return n;
		case HEADER_TOO_LARGE:
			ts.headers_too_large = true;
			return 0;
		default:
			ts.out_of_memory = true;
			return 0;
	}
}

static int
socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	int i;

	for (i = 0; i < ts.nsockets; i++)
		if (ts.sockets[i] == s)
			break;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < ts.nsockets)
		{
			ts.sockets[i] = ts.sockets[ts.nsockets - 1];
			ts.socket_what[i] = ts.socket_what[ts.nsockets - 1];
			ts.nsockets--;
		}
		return 0;
	}
	if (i == ts.nsockets)
	{
		if (ts.nsockets == MAX_SOCKETS)
		{
			ts.socket_overflow = true;
			return -1;
		}
		ts.nsockets++;
	}
	ts.sockets[i] = s;
	ts.socket_what[i] = what;
	return 0;
}

static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	ts.timer_ms = timeout_ms;
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
	/*
	 * allowed_hosts once more, on the peer of this very request: a kept-alive
	 * connection was checked when it was opened, perhaps under older rules.
	 */
	if (ts.check_addresses && conn_primary_ip != NULL)
	{
		struct sockaddr_storage ss;

		memset(&ss, 0, sizeof(ss));
		if (inet_pton(AF_INET, conn_primary_ip, &((struct sockaddr_in *) &ss)->sin_addr) == 1)
			ss.ss_family = AF_INET;
		else if (inet_pton(AF_INET6, conn_primary_ip, &((struct sockaddr_in6 *) &ss)->sin6_addr) == 1)
			ss.ss_family = AF_INET6;
		if (ss.ss_family == 0 || !host_rules_allow_address(dci_host_rules(), (struct sockaddr *) &ss))
		{
			snprintf(ts.blocked, sizeof(ts.blocked), "%s", conn_primary_ip);
			ts.blocked_address = true;
			return CURL_PREREQFUNC_ABORT;
		}
	}
	return ++ts.sends > 1 ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

/* the last check of allowed_hosts: the address actually connected to */
static curl_socket_t
opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
	if (ts.check_addresses && !host_rules_allow_address(dci_host_rules(), &addr->addr))
	{
		char host[INET6_ADDRSTRLEN] = "?";

		if (addr->family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *) &addr->addr)->sin_addr, host, sizeof(host));
		else if (addr->family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &addr->addr)->sin6_addr, host, sizeof(host));
		snprintf(ts.blocked, sizeof(ts.blocked), "%s", host);
		ts.blocked_address = true;
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype, addr->protocol);
}

/* ---- handle lifetime ---- */

static void
end_transfer(void)
{
	if (transfer_active)
	{
		curl_multi_remove_handle(multi, easy);
		transfer_active = false;
	}
	ts.nsockets = 0;
	ts.timer_ms = -1;
}

/* keep small buffers for the next call, give big ones back */
static void
trim_buffers(void)
{
	if (ts.body_cap > KEEP_BUFFER_BYTES)
	{
		free(ts.body);
		ts.body = NULL;
		ts.body_cap = 0;
		ts.body_len = 0;
	}
}

/* an aborted transaction may leave a transfer half done: drop it */
static void
xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		end_transfer();
		trim_buffers();
	}
}

static void
ensure_handles(void)
{
	/* allowed_hosts changed: no pooled connection may outlive the old rules */
	if (multi != NULL && handles_rules_generation != dci_host_rules_generation())
	{
		end_transfer();
		curl_easy_cleanup(easy);
		curl_multi_cleanup(multi);
		easy = NULL;
		multi = NULL;
		last_options.valid = false;
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
		ts.timer_ms = -1;
	}
	if (easy == NULL)
	{
		easy = curl_easy_init();
		if (easy == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not create a libcurl handle")));
	}
	if (!xact_callback_registered)
	{
		RegisterXactCallback(xact_callback, NULL);
		xact_callback_registered = true;
	}
}

/* ---- one attempt ---- */

static bool
options_unchanged(const DciHttpRequest *req)
{
	const char *proxy = dci_proxy ? dci_proxy : "";
	const char *ua = dci_user_agent ? dci_user_agent : "";

	return last_options.valid &&
		   last_options.source_serial == (req->source ? req->source->serial : 0) &&
		   strcmp(last_options.method, req->method) == 0 &&
		   last_options.has_body == (req->body != NULL) &&
		   strcmp(last_options.proxy, proxy) == 0 &&
		   strcmp(last_options.user_agent, ua) == 0 &&
		   last_options.max_bytes == dci_max_response_bytes;
}

static void
remember_options(const DciHttpRequest *req)
{
	const char *proxy = dci_proxy ? dci_proxy : "";
	const char *ua = dci_user_agent ? dci_user_agent : "";

	/* settings too long to compare are simply never reused */
	last_options.valid = strlen(proxy) < sizeof(last_options.proxy) &&
						 strlen(ua) < sizeof(last_options.user_agent);
	last_options.source_serial = req->source ? req->source->serial : 0;
	last_options.method = req->method;
	last_options.has_body = (req->body != NULL);
	strlcpy(last_options.proxy, proxy, sizeof(last_options.proxy));
	strlcpy(last_options.user_agent, ua, sizeof(last_options.user_agent));
	last_options.max_bytes = dci_max_response_bytes;
}

/* everything but URL, headers, body and timeouts */
static void
set_fixed_options(const DciHttpRequest *req)
{
	const DciSource *src = req->source;

	curl_easy_reset(easy);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, curl_errbuf);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
	curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, prereq_cb);
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
	if (src && src->client_cert_tls)
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
	remember_options(req);
}

static void
set_options(const DciHttpRequest *req, struct curl_slist *headers, long timeout_ms)
{
	long connect_ms = Min((long) dci_connect_timeout_ms, timeout_ms);

	if (!options_unchanged(req))
		set_fixed_options(req);
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
 * Wait for libcurl's sockets or its timer.  A plain poll() is enough to be
 * interruptible: PostgreSQL's signals (cancel, statement_timeout, terminate,
 * barriers) interrupt it with EINTR, and a signal that slips in just before
 * it is noticed after at most WAIT_SLICE_MS.  One syscall per wait keeps the
 * warm path close to a bare libcurl loop.
 */
static void
wait_for_events(void)
{
	struct pollfd fds[MAX_SOCKETS];
	long		  timeout = ts.timer_ms;
	int			  nfds = 0;
	int			  rc;
	int			  running;

	if (timeout < 0 || timeout > WAIT_SLICE_MS)
		timeout = WAIT_SLICE_MS;
	for (int i = 0; i < ts.nsockets; i++)
	{
		short ev = 0;

		if (ts.socket_what[i] & CURL_POLL_IN)
			ev |= POLLIN;
		if (ts.socket_what[i] & CURL_POLL_OUT)
			ev |= POLLOUT;
		if (ev == 0)
			continue;
		fds[nfds].fd = ts.sockets[i];
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
		ts.timer_ms = -1;
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

/* run one transfer to its end; returns libcurl's result */
static CURLcode
run_transfer(const DciHttpRequest *req, struct curl_slist *headers, long timeout_ms)
{
	CURLMcode mc;
	CURLcode  result = CURLE_OK;
	bool	  done = false;
	int		  running;

	end_transfer();
	header_list_clear(&ts.headers);
	ts.body_len = 0;
	ts.max_bytes = (size_t) dci_max_response_bytes;
	ts.too_large = ts.headers_too_large = ts.out_of_memory = false;
	ts.blocked_address = false;
	ts.socket_overflow = false;
	ts.sends = 0;
	/* through a proxy, the address connected to is the proxy's own */
	ts.check_addresses = dci_host_rules() != NULL && (dci_proxy == NULL || *dci_proxy == '\0');
	curl_errbuf[0] = '\0';

	set_options(req, headers, timeout_ms);
	mc = curl_multi_add_handle(multi, easy);
	if (mc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_TRANSPORT),
				 errmsg("could not start an HTTP transfer: %s", curl_multi_strerror(mc))));
	transfer_active = true;
	curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);

	while (!done)
	{
		CURLMsg *msg;
		int		 queued;

		while ((msg = curl_multi_info_read(multi, &queued)) != NULL)
		{
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy)
			{
				result = msg->data.result;
				done = true;
			}
		}
		if (done)
			break;
		CHECK_FOR_INTERRUPTS();
		if (ts.timer_ms == 0)
		{
			ts.timer_ms = -1;
			curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
			continue;
		}
		wait_for_events();
	}
	return result;
}

/* classify a finished attempt and describe a failure in err (http_failure.c) */
static DciOutcome
describe_failure(const DciHttpRequest *req, CURLcode rc, DciError *err)
{
	DciTransferFacts f = {0};
	curl_off_t		 t;

	if (ts.out_of_memory)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while receiving a response from \"%s\"", dci_url_origin(req->url))));
	f.source_code = req->source ? req->source->code : "?";
	f.origin = dci_url_origin(req->url);
	f.curl_error = curl_errbuf[0] ? curl_errbuf : curl_easy_strerror(rc);
	f.blocked_address = ts.blocked_address;
	f.blocked = ts.blocked;
	f.too_large = ts.too_large;
	f.max_response_bytes = dci_max_response_bytes;
	f.headers_too_large = ts.headers_too_large;
	f.max_header_bytes = MAX_HEADER_BYTES;
	f.max_header_count = MAX_HEADER_COUNT;
	f.resent = ts.sends > 1;
	f.socket_overflow = ts.socket_overflow;
	f.max_sockets = MAX_SOCKETS;
	f.deadline_passed = GetCurrentTimestamp() >= req->deadline;
	if (rc == CURLE_PEER_FAILED_VERIFICATION)
		curl_easy_getinfo(easy, CURLINFO_SSL_VERIFYRESULT, &f.verify_result);
	if (curl_easy_getinfo(easy, CURLINFO_NAMELOOKUP_TIME_T, &t) == CURLE_OK)
		f.dns_ms = t / 1000.0;
	if (curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &t) == CURLE_OK)
		f.connect_ms = t / 1000.0;
	if (curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &t) == CURLE_OK)
		f.tls_ms = t / 1000.0;
	if (curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &t) == CURLE_OK)
		f.total_ms = t / 1000.0;
	return dci_describe_failure(rc, &f, err);
}

static DciOutcome
attempt(const DciHttpRequest *req, struct curl_slist *headers, long *status, DciError *err)
{
	long	 remaining = dci_ms_until(req->deadline);
	CURLcode rc;

	if (remaining <= 0)
	{
		dci_error_set(err, ERRCODE_DCI_TIMEOUT, "call to data source \"%s\" (\"%s\") ran out of time",
					  req->source ? req->source->code : "?", dci_url_origin(req->url));
		dci_error_hint(err, "The budget is the data source's timeout_ms, or dci_client.timeout_ms.");
		return DCI_OUTCOME_FAILED;
	}
	rc = run_transfer(req, headers, remaining);
	if (rc == CURLE_OK)
	{
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
		end_transfer();
		return DCI_OUTCOME_HTTP;
	}
	{
		DciOutcome o = describe_failure(req, rc, err);

		end_transfer();
		return o;
	}
}

bool
dci_http_exchange(const DciHttpRequest *req, DciHttpResponse *resp)
{
	TimestampTz		   start = GetCurrentTimestamp();
	struct curl_slist *headers = NULL;
	DciOutcome		   o = DCI_OUTCOME_FAILED;
	long			   status = 0;
	char			  *host;

	memset(resp, 0, sizeof(*resp));
	ensure_handles();

	/* allowed_hosts, by name, before anything is sent */
	if (dci_host_rules() != NULL)
	{
		host = dci_url_host(req->url);
		if (host == NULL || !host_rules_allow_host(dci_host_rules(), host))
		{
			dci_error_set(&resp->error, ERRCODE_DCI_CONFIG,
						  "host \"%s\" of data source \"%s\" is not allowed by dci_client.allowed_hosts",
						  host ? host : "?", req->source ? req->source->code : "?");
			return false;
		}
	}

	headers = dci_header_slist(req->headers);

	{
		for (resp->attempts = 1;; resp->attempts++)
		{
			long delay;

			memset(&resp->error, 0, sizeof(resp->error));
			status = 0;
			o = attempt(req, headers, &status, &resp->error);
			if (resp->attempts > dci_max_retries || !dci_retryable(o, status, req->idempotent))
				break;
			delay = dci_retry_delay_ms(resp->attempts, (status == 429 || status == 503) ? header_list_get(&ts.headers, "retry-after") : NULL);
			/* a wait that would outlast the budget: answer with what we have */
			if (delay >= dci_ms_until(req->deadline))
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
	}

	resp->elapsed_ms = (GetCurrentTimestamp() - start) / 1000.0;
	if (o != DCI_OUTCOME_HTTP)
	{
		trim_buffers();
		return false;
	}

	resp->status = status;
	resp->body = palloc(ts.body_len + 1);
	if (ts.body_len)
		memcpy(resp->body, ts.body, ts.body_len);
	resp->body[ts.body_len] = '\0';
	resp->body_len = ts.body_len;
	resp->headers = &ts.headers;
	trim_buffers();
	return true;
}
