"""Async UDS (ISO 14229-1) client over any :class:`ecuworks.transport.base.Link`."""

from ecuworks.uds.client import SessionTimings, Timing, UdsClient
from ecuworks.uds.download import DownloadResult
from ecuworks.uds.functional import TesterPresent, functional_request
from ecuworks.uds.security import available_algorithms, load_algorithm

__all__ = [
    "DownloadResult",
    "SessionTimings",
    "TesterPresent",
    "Timing",
    "UdsClient",
    "available_algorithms",
    "functional_request",
    "load_algorithm",
]
