"""Async UDS (ISO 14229-1) client over any :class:`ecuworks.transport.base.Link`."""
