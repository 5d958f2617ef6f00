"""tls: days until the certificate expires (runbook 000 section 1.5), with full verification."""
from __future__ import annotations

import asyncio
import ssl
import time

from bot.check.result import Finding
from bot.config.models import TlsCheck


async def run(check: TlsCheck, ctx) -> list[Finding]:
    context = ssl.create_default_context(cafile=check.ca_file)
    server_name = check.server_name or check.host
    try:
        _, writer = await asyncio.open_connection(check.host, check.port, ssl=context, server_hostname=server_name)
    except ssl.SSLCertVerificationError as exc:
        return [Finding("critical", f"certificate rejected: {exc.verify_message or exc.reason}")]
    except (OSError, ssl.SSLError) as exc:
        return [Finding("critical", f"TLS handshake with {check.host}:{check.port} failed ({exc.__class__.__name__})")]
    try:
        cert = writer.get_extra_info("peercert") or {}
    finally:
        writer.close()
    expires = ssl.cert_time_to_seconds(cert["notAfter"])
    days = (expires - time.time()) / 86400
    return [Finding(check.days.grade(days), f"certificate for {server_name} expires in {days:.0f} days ({cert['notAfter']})")]
