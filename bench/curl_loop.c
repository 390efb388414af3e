/*
 * curl_loop.c - the reference of the dci_client benchmark (bench/run.py).
 *
 * A plain C loop doing the request dci_request() makes, as fast as libcurl
 * allows: ONE easy handle reused for every call (so one keep-alive
 * connection), a 313-byte JSON body that changes with the iteration number,
 *     Authorization: Bearer bench-token
 *     Content-Type: application/json
 *     Accept: application/json
 * and the answer read into a memory buffer.
 *
 *     curl_loop URL N [fresh]
 *
 * prints one line:  "<us per call> us/call <N> calls <libcurl version>".
 * With "fresh", every call uses a new easy handle and so a new TCP
 * connection: the reference for a cold call.  The first call (connect) is
 * made before the clock starts, except in "fresh" mode.
 *
 * Build: cc -O2 -o curl_loop curl_loop.c -lcurl
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BODY_LEN 313

typedef struct
{
	char  *data;
	size_t len;
	size_t cap;
} Buf;

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Buf	  *b = userdata;
	size_t n = size * nmemb;

	if (b->len + n + 1 > b->cap)
	{
		size_t cap = b->cap ? b->cap : 4096;

		while (b->len + n + 1 > cap)
			cap *= 2;
		b->data = realloc(b->data, cap);
		if (b->data == NULL)
			return 0;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* {"n":<7 digits>,"pad":"xxx...x"}: exactly BODY_LEN bytes, like run.py's SQL */
static size_t
make_body(char *out, long i)
{
	int n = snprintf(out, BODY_LEN + 1, "{\"n\":%ld,\"pad\":\"", 1000000 + (i % 9000000));

	memset(out + n, 'x', BODY_LEN - n - 2);
	out[BODY_LEN - 2] = '"';
	out[BODY_LEN - 1] = '}';
	out[BODY_LEN] = '\0';
	return BODY_LEN;
}

static CURL *
new_handle(const char *url, struct curl_slist *headers, Buf *buf)
{
	CURL *h = curl_easy_init();

	if (h == NULL)
	{
		fprintf(stderr, "curl_easy_init failed\n");
		exit(1);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, buf);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	return h;
}

static void
one_call(CURL *h, Buf *buf, char *body, long i)
{
	CURLcode rc;
	long	 status = 0;
	size_t	 len = make_body(body, i);

	buf->len = 0;
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long) len);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK)
	{
		fprintf(stderr, "call %ld: %s\n", i, curl_easy_strerror(rc));
		exit(1);
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200 || buf->len < 2)
	{
		fprintf(stderr, "call %ld: HTTP %ld, %zu bytes\n", i, status, buf->len);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	const char		  *url;
	long			   n;
	int				   fresh;
	struct curl_slist *headers = NULL;
	Buf				   buf = {0};
	char			   body[BODY_LEN + 1];
	struct timespec	   t0, t1;
	double			   us;
	CURL			  *h = NULL;

	if (argc < 3)
	{
		fprintf(stderr, "usage: %s URL N [fresh]\n", argv[0]);
		return 2;
	}
	url = argv[1];
	n = atol(argv[2]);
	fresh = argc > 3 && strcmp(argv[3], "fresh") == 0;
	if (n < 1)
		return 2;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	headers = curl_slist_append(headers, "Authorization: Bearer bench-token");
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Accept: application/json");

	if (!fresh)
	{
		h = new_handle(url, headers, &buf);
		one_call(h, &buf, body, 0); /* warm-up: connect */
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 1; i <= n; i++)
	{
		if (fresh)
		{
			h = new_handle(url, headers, &buf);
			one_call(h, &buf, body, i);
			curl_easy_cleanup(h);
		}
		else
			one_call(h, &buf, body, i);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n;
	printf("%.3f us/call %ld calls %s\n", us, n, curl_version());
	if (!fresh)
		curl_easy_cleanup(h);
	curl_slist_free_all(headers);
	free(buf.data);
	curl_global_cleanup();
	return 0;
}
