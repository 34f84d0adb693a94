"""A webhook receiver on 127.0.0.1 for billd's end-to-end tests.

Binds an ephemeral port, prints it on the first line of stdout, and appends
one JSON line per POST (its webhook-id, webhook-timestamp and
webhook-signature headers, the body, and whether the signature verifies)
to the file named by the first argument. The second argument is the
`whsec_<base64>` secret: the signature is checked here with Python's own
hmac module, independently of billd's implementation, the way the
Standard Webhooks reference libraries do. Answers 200. Runs until killed.
"""

import base64
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def expected_signature(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    mac = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def handler(spool, secret):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            msg_id = self.headers.get("webhook-id", "")
            timestamp = self.headers.get("webhook-timestamp", "")
            signature = self.headers.get("webhook-signature", "")
            # A header may carry several space-separated signatures.
            want = expected_signature(secret, msg_id, timestamp, body)
            verified = any(
                hmac.compare_digest(s, want) for s in signature.split(" ")
            )
            record = {
                "path": self.path,
                "id": msg_id,
                "timestamp": timestamp,
                "signature": signature,
                "verified": verified,
                "body": body.decode("utf-8", "replace"),
            }
            with open(spool, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    return Handler


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(sys.argv[1], sys.argv[2]))
    print(server.server_address[1], flush=True)
    server.serve_forever()
