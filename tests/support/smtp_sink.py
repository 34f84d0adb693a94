"""A real SMTP server on 127.0.0.1 for billd's end-to-end tests.

Binds an ephemeral port, prints it on the first line of stdout, and appends
one JSON line per accepted message (envelope sender, recipients, Message-ID,
Subject, body) to the file named by the first argument. Runs until killed.
"""

import asyncio
import json
import sys
from email import message_from_bytes

from aiosmtpd.smtp import SMTP


class Recorder:
    def __init__(self, path):
        self.path = path

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.original_content or envelope.content)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "message_id": msg.get("Message-ID"),
            "subject": msg.get("Subject"),
            "to": msg.get("To"),
            "body": msg.get_payload(decode=True).decode("utf-8", "replace"),
        }
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 Message accepted for delivery"


async def main(path):
    loop = asyncio.get_running_loop()
    handler = Recorder(path)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="billd-test-sink"), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
