"""ntxcp 1.0 message models: pure data and validation, no I/O (spec §3, §4, §5).

Layout:

* :mod:`~ntxcp.v10.types`: the data types of spec §3 (``CiString50``, ``DateTime``, ...),
  the date-time rules, and the structures shared by several messages (``MeterValue``,
  ``SampledValue``, ``KeyValue``, ``CapturedDatapoint``);
* :mod:`~ntxcp.v10.core`, :mod:`~ntxcp.v10.firmware`, :mod:`~ntxcp.v10.remotetrigger`:
  one module per profile (spec §5), named like the reference API's packages, each with
  its requests, confirmations, enums and the handler base classes
  (``ControlCenterHandler``, ``GatewayHandler``) an application subclasses;
* :mod:`~ntxcp.v10.registry`: the table of the 15 actions (:data:`ACTIONS`) and of the
  profiles (:data:`PROFILES`);
* :mod:`~ntxcp.v10.codec`: decoding with validation (errors carry the spec §2.1 code
  and a JSON path) and encoding (date-times as millisecond UTC);
* :mod:`~ntxcp.v10.schema`: JSON Schemas generated from the models; the package ships
  them in ``ntxcp/v10/schemas/``.

Example::

    from ntxcp.v10 import core, decode_payload, encode_payload

    req = core.BootNotificationRequest(dingx_gateway_model="DX-1")
    data = encode_payload(req)  # b'{"dingxGatewayModel":"DX-1"}'
    assert decode_payload(core.BootNotificationRequest, data) == req
"""

from ntxcp.v10 import core, firmware, remotetrigger, types
from ntxcp.v10.base import AnyRequest, Confirmation, Direction, Payload, Profile, Request
from ntxcp.v10.codec import decode_payload, encode_payload, to_builtins
from ntxcp.v10.registry import (
    ACTIONS,
    PROFILES,
    ActionSpec,
    ProfileSpec,
    action_spec,
    handled_by_control_center,
    handled_by_gateway,
)

__all__ = [
    "ACTIONS",
    "PROFILES",
    "ActionSpec",
    "AnyRequest",
    "Confirmation",
    "Direction",
    "Payload",
    "Profile",
    "ProfileSpec",
    "Request",
    "action_spec",
    "core",
    "decode_payload",
    "encode_payload",
    "firmware",
    "handled_by_control_center",
    "handled_by_gateway",
    "remotetrigger",
    "to_builtins",
    "types",
]
