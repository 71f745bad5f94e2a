"""FLUTE's secure aggregation: SecAgg / SecAgg+ (Bonawitz et al. 2017, Bell et al. 2020).

The aggregator learns only the sum of the hubs' vectors (URS-2, F-SRS-10, F-PIL-11),
even if up to n - t hubs drop out, and a malicious aggregator cannot impersonate hubs
or swap their keys (URS-15). A pure library: protocol steps are methods of explicit
session objects exchanging typed messages; the engine carries the messages.
See docs/secure-aggregation.md for parameters, threat model and message flow.
"""

from flute.privacy.secagg.client import ClientSession, ClientStage
from flute.privacy.secagg.config import DEFAULT_ENCODING, SecAggConfig
from flute.privacy.secagg.driver import HUB_STAGES, enrol_hubs, run_secure_sum, run_sessions
from flute.privacy.secagg.errors import (
    AuthenticationError,
    ConfigError,
    InputError,
    MalformedMessageError,
    OverflowPolicyError,
    ProtocolError,
    SecAggError,
    ThresholdError,
)
from flute.privacy.secagg.fixed_point import EncodedVector, FixedPoint
from flute.privacy.secagg.messages import (
    EncryptedShares,
    KeyAdvertisement,
    KeyDirectory,
    MaskedInput,
    ShareDelivery,
    SurvivorConfirmation,
    SurvivorList,
    UnmaskRequest,
    UnmaskResponse,
)
from flute.privacy.secagg.server import SecureSumResult, ServerSession, ServerStage

__all__ = [
    "DEFAULT_ENCODING",
    "HUB_STAGES",
    "AuthenticationError",
    "ClientSession",
    "ClientStage",
    "ConfigError",
    "EncodedVector",
    "EncryptedShares",
    "FixedPoint",
    "InputError",
    "KeyAdvertisement",
    "KeyDirectory",
    "MalformedMessageError",
    "MaskedInput",
    "OverflowPolicyError",
    "ProtocolError",
    "SecAggConfig",
    "SecAggError",
    "SecureSumResult",
    "ServerSession",
    "ServerStage",
    "ShareDelivery",
    "SurvivorConfirmation",
    "SurvivorList",
    "ThresholdError",
    "UnmaskRequest",
    "UnmaskResponse",
    "enrol_hubs",
    "run_secure_sum",
    "run_sessions",
]
