"""Mail with attachments for the attachment-content tests (EWS and Graph): a PDF-ish file, an inline
image (cid), an attached message, an archive over the tests' ``max_bytes`` and a type not allowed."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP

MAX_BYTES = 256 * 1024
CONTENT_TYPES = ["application/pdf", "image/*", "message/rfc822", "application/zip"]


def _noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@dataclass
class AttachmentMail:
    mime: bytes
    pdf: bytes
    image: bytes
    big: bytes
    exe: bytes

    def sha(self, data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()


def attachment_mail(message_id: str, subject: str = "Invoice 4411 with scan", seed: int = 1,
                    date: str = "Mon, 04 Mar 2024 10:00:00 +0000") -> AttachmentMail:
    pdf = b"%PDF-1.7\n" + _noise(120 * 1024, seed) + b"\n%%EOF\n"
    image = b"\x89PNG\r\n\x1a\n" + _noise(2048, seed + 1)
    big = b"PK\x03\x04" + _noise(MAX_BYTES + 1024, seed + 2)
    exe = b"MZ" + _noise(512, seed + 3)
    inner = EmailMessage()
    inner["From"] = "Bob <bob@supplier.example>"
    inner["To"] = "ap@example.com"
    inner["Subject"] = "Original order"
    inner["Message-ID"] = f"<inner-{seed}@supplier.example>"
    inner.set_content("Please find the order attached.\n")

    msg = EmailMessage()
    msg["From"] = "Ann <ann@acme.example>"
    msg["To"] = "ap@example.com"
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = message_id
    msg.set_content("Dear AP,\n\nthe invoice is attached, the scan is below.\n\nAnn\n")
    msg.add_alternative('<p>Dear AP,</p><p>the invoice is attached.</p><img src="cid:scan@acme">', subtype="html")
    msg.get_payload()[1].add_related(image, "image", "png", cid="<scan@acme>", filename="scan.png")
    msg.add_attachment(pdf, "application", "pdf", filename="invoice 4411.pdf")
    msg.add_attachment(inner)
    msg.add_attachment(big, "application", "zip", filename="archive.zip")
    msg.add_attachment(exe, "application", "x-msdownload", filename="tool.exe")
    return AttachmentMail(mime=msg.as_bytes(policy=SMTP), pdf=pdf, image=image, big=big, exe=exe)
