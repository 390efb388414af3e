"""A DCI registry for the batch benchmark (bench/run.py --batch): answers every
sync search after a fixed delay, serving concurrent requests (one thread per
connection, keep-alive), with one record per item.  Optionally capped: an
envelope of more than max_items items gets HTTP 413.  It counts envelopes,
items and the most envelopes it held at once.  Runs in the bench's process."""
import json, threading, time, uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with srv.lock:
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
        try:
            time.sleep(srv.delay)
            env = json.loads(body)
            items = env["message"]["search_request"]
            with srv.lock:
                srv.envelopes += 1
                srv.items += len(items)
            if srv.max_items and len(items) > srv.max_items:
                out, status = b'{"error": "request entity too large"}', 413
            else:
                now = _now()
                resp = []
                for it in items:
                    v = str(it["search_criteria"]["query"]["value"])
                    resp.append({"reference_id": it["reference_id"], "timestamp": now, "status": "succ",
                                 "data": {"version": "1.0.0", "reg_type": it["search_criteria"].get("reg_type", ""),
                                          "reg_record_type": "Person",
                                          "reg_records": [{"identifier": [{"identifier_type": "UIN",
                                                                           "identifier_value": v}]}]},
                                 "pagination": {"page_size": 100, "page_number": 1, "total_count": 1}})
                header = {"version": "1.0.0", "message_id": str(uuid.uuid4()), "message_ts": now,
                          "action": "on-search", "status": "succ", "total_count": len(resp),
                          "completed_count": len(resp), "sender_id": "bench-registry",
                          "receiver_id": env["header"].get("sender_id", ""), "is_msg_encrypted": False, "meta": {}}
                out = json.dumps({"signature": "", "header": header, "message": {
                    "transaction_id": env["message"]["transaction_id"], "correlation_id": str(uuid.uuid4()),
                    "search_response": resp}}).encode()
                status = 200
        finally:
            with srv.lock:
                srv.inflight -= 1
        self._send(status, out)


class BatchRegistry(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, delay=0.05, max_items=0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay, self.max_items = delay, max_items
        self.lock = threading.Lock()
        self.reset()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def reset(self):
        with self.lock:
            self.envelopes = self.items = self.inflight = self.max_inflight = 0

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()
