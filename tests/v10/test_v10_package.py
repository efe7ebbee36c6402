"""The public surface of ntxcp.v10."""

from __future__ import annotations

import importlib

import ntxcp.v10

PUBLIC = {
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
}


def test_exports() -> None:
    assert set(ntxcp.v10.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(ntxcp.v10, name) is not None


def test_module_all_lists_are_complete() -> None:
    for module_name in ("types", "core", "firmware", "remotetrigger", "registry", "schema"):
        module = importlib.import_module(f"ntxcp.v10.{module_name}")
        for name in module.__all__:
            assert hasattr(module, name), (module_name, name)
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
        }
        assert public <= set(module.__all__), (module_name, public - set(module.__all__))


def test_docstring_example() -> None:
    from ntxcp.v10 import core, decode_payload, encode_payload

    req = core.BootNotificationRequest(dingx_gateway_model="DX-1")
    data = encode_payload(req)
    assert data == b'{"dingxGatewayModel":"DX-1"}'
    assert decode_payload(core.BootNotificationRequest, data) == req
