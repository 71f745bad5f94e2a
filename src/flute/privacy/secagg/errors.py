"""Errors raised by the secure-aggregation protocol.

One base class so the engine can catch "the secure sum failed" in one place, and a
subclass per cause so a caller (and a test) can tell an attack from a bad config from
too many dropouts. Every message says what went wrong, where, and how to fix it.
"""

from __future__ import annotations


class SecAggError(Exception):
    """Base class of every secure-aggregation failure."""


class ConfigError(SecAggError, ValueError):
    """The protocol parameters are inconsistent (e.g. threshold above the hub count)."""


class OverflowPolicyError(ConfigError):
    """The fixed-point parameters would let the modular sum wrap around.

    Raised at configuration time, before any data is touched: n_hubs * clip_bound *
    2**scale_bits must stay below 2**63 (half the 2**64 modulus) so that every possible
    sum decodes to its true signed value.
    """


class InputError(SecAggError, ValueError):
    """A hub's input vector cannot be encoded (wrong shape, NaN/inf, out of range)."""


class ThresholdError(SecAggError):
    """Fewer than the threshold t hubs are left at some stage: the round aborts.

    Raised before anything that depends on the threshold is revealed, so an abort
    discloses neither an individual input nor the aggregate.
    """


class AuthenticationError(SecAggError):
    """A message failed signature, round-binding or decryption checks.

    Indicates tampering (a malicious aggregator or a forged hub), never a benign fault.
    """


class ProtocolError(SecAggError):
    """A stage was called out of order or a message does not fit the session's state."""


class MalformedMessageError(SecAggError, ValueError):
    """Bytes received over the wire do not decode to the expected message."""
