"""How I am reached as staff: my mobile number for text messages, and my channels per event."""

from __future__ import annotations

from typing import Annotated

import strawberry

from rapidly.schema.errors import InputInvalidError, RateLimitedError, returns_errors
from rapidly.schema.media import ChannelType
from rapidly.schema.permissions import IsStaff
from rapidly.schema.staff import Staff
from rapidly.staff import reach


@strawberry.type(description="The code is on its way to this number; answer with `verifySmsNumber`.")
class SmsCodeSent:
    number: str = strawberry.field(description="The number as it will be dialled (E.164).")


@strawberry.type
class SmsNumberVerified:
    staff: Staff


@strawberry.type
class MyMessageChannelsChanged:
    staff: Staff


StartSmsNumberCheckResult = Annotated[
    SmsCodeSent | InputInvalidError | RateLimitedError, strawberry.union("StartSmsNumberCheckResult")
]
VerifySmsNumberResult = Annotated[SmsNumberVerified | InputInvalidError, strawberry.union("VerifySmsNumberResult")]
SetMyMessageChannelsResult = Annotated[
    MyMessageChannelsChanged | InputInvalidError, strawberry.union("SetMyMessageChannelsResult")
]


@strawberry.type
class ReachMutation:
    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Text a code to my mobile number (in any common notation; EU/EEA mobile numbers only), to "
        "confirm it is mine; it replaces a number waiting before. A few codes a day.",
    )
    @returns_errors
    async def start_sms_number_check(self, info: strawberry.Info, number: str) -> StartSmsNumberCheckResult:
        return SmsCodeSent(number=await reach.start_check(await info.context.staff(), number))

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description=f"The code texted to my number: the number is mine for text messages. After {reach.MAX_TRIES} "
        "wrong codes, or once it expired, ask for a new one.",
    )
    @returns_errors
    async def verify_sms_number(self, info: strawberry.Info, code: str) -> VerifySmsNumberResult:
        ctx = info.context
        return SmsNumberVerified(staff=Staff.from_model(await reach.verify(ctx.settings, await ctx.staff(), code)))

    @strawberry.mutation(permission_classes=[IsStaff], description="No more text messages: forget my number.")
    async def remove_sms_number(self, info: strawberry.Info) -> Staff:
        return Staff.from_model(await reach.remove_number(await info.context.staff()))

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description='How a message to staff ("NEW_CONTACT", "MEDIA_ADDED", "CHAT_MESSAGE") reaches me: email, SMS '
        "(my confirmed number), both or none; null: as the company chose.",
    )
    @returns_errors
    async def set_my_message_channels(
        self,
        info: strawberry.Info,
        event: str,
        channels: list[ChannelType] | None,  # type: ignore[valid-type]
    ) -> SetMyMessageChannelsResult:
        values = None if channels is None else [channel.value for channel in channels]
        staff = await reach.choose(await info.context.staff(), event, values)
        return MyMessageChannelsChanged(staff=Staff.from_model(staff))
