"""How a test's ending becomes a verdict (DESIGN section 3).

Kept apart from the plugin so the mapping is one readable table, tested on its own.
"""

from __future__ import annotations

import sys

from .conformance import DeviceFailure, HarnessError, Inconclusive, NotApplicable
from .model import Verdict
from .transport.modbus_tcp import TransportError


def classify(excinfo) -> tuple[Verdict, str]:
    """(verdict, message) for a test that ended with `excinfo` (None when it returned)."""
    if excinfo is None:
        return Verdict.PASS, ""
    exc = excinfo.value
    if isinstance(exc, NotApplicable):
        return Verdict.NOT_APPLICABLE, str(exc)
    if isinstance(exc, Inconclusive):
        return Verdict.INCONCLUSIVE, str(exc)
    if isinstance(exc, DeviceFailure):
        return Verdict.FAIL, str(exc)
    if isinstance(exc, AssertionError):
        text = str(exc).split("\nassert ")[0].strip() or "assertion failed"
        return Verdict.FAIL, text
    if isinstance(exc, TransportError):
        # The device did not answer, or closed the connection, where the rule says it answers.
        return Verdict.FAIL, f"{type(exc).__name__}: {exc}"
    if _is_ua_transport_error(exc):
        if _refuses_the_harness_certificate(exc):
            return Verdict.ERROR, (f"{type(exc).__name__}: {exc}. The server refused the secure channel for the harness's "
                                   "client certificate: this is the lab's set-up, not a verdict on the device. Add the "
                                   "certificate `harness certify` prints to the device's trusted certificates and run again.")
        # The same for OPC UA: no answer, the channel closed or refused, or bytes that do not decode.
        return Verdict.FAIL, f"{type(exc).__name__}: {exc}"
    if excinfo.typename == "Skipped":
        return Verdict.NOT_APPLICABLE, str(getattr(exc, "msg", exc))
    if isinstance(exc, HarnessError):
        return Verdict.ERROR, str(exc)
    return Verdict.ERROR, f"harness error: {type(exc).__name__}: {exc}"


# Status codes of an ERR or an OpenSecureChannel fault with which a server refuses a client
# certificate it does not trust (Part 4 v1.04 §6.1.3 and Table 12, Part 6 v1.05 §6.7.6): the
# generic BadSecurityChecksFailed and BadCertificateUntrusted.
_UNTRUSTED_CERTIFICATE = {0x80130000, 0x801A0000}


def _is_ua_transport_error(exc: BaseException) -> bool:
    # harness.opcua loads asyncua: never imported here for a Modbus run.  An exception of its
    # kind can only exist once something else imported it.
    errors = sys.modules.get("harness.opcua.errors")
    return errors is not None and isinstance(exc, errors.UaTransportError)


def _refuses_the_harness_certificate(exc: BaseException) -> bool:
    error = getattr(exc, "error", None)  # ChannelRefused / ChannelClosed: the ERR, if one came
    if error is not None and getattr(error, "error", None) in _UNTRUSTED_CERTIFICATE:
        return True
    response = getattr(exc, "response", None)  # ChannelRefused: a ServiceFault to OpenSecureChannel
    header = getattr(response, "ResponseHeader", None)
    result = getattr(header, "ServiceResult", None)
    return getattr(result, "value", None) in _UNTRUSTED_CERTIFICATE
