"""TriggerMessage: after an Accepted answer the gateway sends the requested message (§4.3)."""

from __future__ import annotations

from typing import Any

from endpoint_helpers import G2C_REPLIES, GW, Recording, eventually, next_error

from ntxcp.v10 import core, remotetrigger

ACCEPTED = remotetrigger.TriggerMessageConfirmation(
    status=remotetrigger.TriggerMessageStatus.ACCEPTED
)
REJECTED = remotetrigger.TriggerMessageConfirmation(
    status=remotetrigger.TriggerMessageStatus.REJECTED
)
BOOT = core.BootNotificationRequest(dingx_gateway_model="DX-TRIGGER")


class Trigger(remotetrigger.GatewayHandler):
    def __init__(self, answer: remotetrigger.TriggerMessageConfirmation) -> None:
        self.answer = answer

    def on_trigger_message(
        self, request: remotetrigger.TriggerMessageRequest
    ) -> remotetrigger.TriggerMessageConfirmation:
        return self.answer


async def setup(make_cc: Any, make_gw: Any, answer: Any, **options: Any) -> tuple[Any, Any, Any]:
    cc = await make_cc()
    center = Recording(control_center=True, replies=G2C_REPLIES)
    center.install(cc)
    gw = await make_gw(cc.url, **options)
    gw.set_remote_trigger_handler(Trigger(answer))
    await gw.wait_ready(5)
    return cc, center, gw


async def test_an_accepted_heartbeat_trigger_is_followed_by_a_heartbeat(make_cc, make_gw):
    cc, center, _gw = await setup(make_cc, make_gw, ACCEPTED)
    conf = await cc.trigger_message(GW, "Heartbeat")
    assert conf.status is remotetrigger.TriggerMessageStatus.ACCEPTED
    await eventually(lambda: "Heartbeat" in center.actions())


async def test_a_boot_trigger_sends_the_gateways_boot_request(make_cc, make_gw):
    cc, center, _gw = await setup(make_cc, make_gw, ACCEPTED, boot=BOOT, heartbeat=False)
    await eventually(lambda: center.actions() == ["BootNotification"])
    await cc.trigger_message(GW, remotetrigger.MessageTrigger.BOOT_NOTIFICATION)
    await eventually(lambda: center.actions() == ["BootNotification", "BootNotification"])
    assert center.received[1].request == BOOT


async def test_the_after_answer_hook_supplies_the_applications_message(make_cc, make_gw):
    cc, center, gw = await setup(make_cc, make_gw, ACCEPTED)
    asked: list[remotetrigger.TriggerMessageRequest] = []

    def hook(request: remotetrigger.TriggerMessageRequest) -> core.StatusNotificationRequest:
        asked.append(request)
        return core.StatusNotificationRequest(
            service_id=request.service_id or "0",
            error_code=core.DingxGatewayErrorCode.NO_ERROR,
            status=core.DingxGatewayStatus.AVAILABLE,
        )

    gw.set_trigger_message_handler(hook)
    await cc.trigger_message(GW, "StatusNotification", service_id="3")
    await eventually(lambda: "StatusNotification" in center.actions())
    assert asked[0].service_id == "3"
    assert center.received[-1].request.service_id == "3"
    await gw.flush(5)


async def test_a_rejected_trigger_sends_nothing(make_cc, make_gw):
    cc, center, gw = await setup(make_cc, make_gw, REJECTED)
    await cc.trigger_message(GW, "Heartbeat")
    answered = await gw.data_transfer("ding", timeout=5)  # a round trip after the trigger
    assert answered is not None
    assert center.actions() == ["DataTransfer"]


async def test_a_failing_hook_is_reported_on_the_error_stream(make_cc, make_gw):
    cc, _center, gw = await setup(make_cc, make_gw, ACCEPTED)

    def hook(request: remotetrigger.TriggerMessageRequest) -> None:
        raise RuntimeError("no meter attached")

    gw.set_trigger_message_handler(hook)
    await cc.trigger_message(GW, "MeterValues")
    error = await next_error(gw, "trigger-failed")
    assert "no meter attached" in str(error)
