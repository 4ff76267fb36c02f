"""Photos: `uploadMedia` (GraphQL multipart request), and `createContinueLink` (a QR code on screen) and
`sendContinueLink` (a message) to add them from a phone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.file_uploads import Upload

from rapidly.contacts import continuation
from rapidly.errors import AuthFailed
from rapidly.media import service
from rapidly.media.models import Media as MediaModel
from rapidly.plugins import Channel
from rapidly.schema.errors import AuthError, InputInvalidError, RateLimitedError, returns_errors

ChannelType = strawberry.enum(Channel, name="Channel")


@strawberry.type
class Media:
    id: strawberry.ID
    field_key: str
    content_type: str
    width: int
    height: int
    created_at: datetime
    model: strawberry.Private[MediaModel]

    @classmethod
    def of(cls, media: MediaModel) -> Media:
        return cls(
            id=strawberry.ID(str(media.id)),
            field_key=media.field_key,
            content_type=media.content_type,
            width=media.width,
            height=media.height,
            created_at=media.created_at,
            model=media,
        )

    @strawberry.field(description="A short-lived signed link to the image; never a public one.")
    async def url(self, info: strawberry.Info) -> str:
        return service.signed_url(info.context.settings, self.model)


@strawberry.type
class MediaUploaded:
    media: Media


@strawberry.type
class LinkSent:
    channel: ChannelType
    masked_recipient: str = strawberry.field(description="The contact's own address, partly hidden.")


@strawberry.type(description="A link that opens this contact on another device, to show on screen; nothing is sent.")
class ContinueLink:
    url: str = strawberry.field(description="The phone page, `/continue/{token}`; anyone holding it sees this contact.")
    qr_svg: str = strawberry.field(description="The link as a QR code: a standalone SVG document.")
    expires_at: datetime


UploadMediaResult = Annotated[MediaUploaded | InputInvalidError | AuthError, strawberry.union("UploadMediaResult")]
CreateContinueLinkResult = Annotated[
    ContinueLink | AuthError | RateLimitedError, strawberry.union("CreateContinueLinkResult")
]
SendLinkResult = Annotated[
    LinkSent | InputInvalidError | AuthError | RateLimitedError, strawberry.union("SendLinkResult")
]


@strawberry.type
class MediaMutation:
    @strawberry.mutation(
        description="Contact token: add a photo to an image field. A multipart request (with the "
        "`Rapidly-Upload: 1` header); JPEG, PNG or WebP, re-encoded without any metadata."
    )
    @returns_errors
    async def upload_media(self, info: strawberry.Info, field_key: str, file: Upload) -> UploadMediaResult:
        ctx = info.context
        contact = await ctx.contact()
        if contact is None:
            raise AuthFailed()
        media = await service.upload(ctx.settings, ctx.plugins, ctx.storage, contact, field_key, file.read)  # type: ignore[attr-defined]
        return MediaUploaded(media=Media.of(media))

    @strawberry.mutation(
        description="Contact token: a short-lived link to this contact, and its QR code, for the screen to show: "
        "scanned with a phone, it opens the phone page to add photos. Nothing is sent."
    )
    @returns_errors
    async def create_continue_link(self, info: strawberry.Info) -> CreateContinueLinkResult:
        ctx = info.context
        contact = await ctx.contact()
        if contact is None:
            raise AuthFailed()
        link = await continuation.continue_link(ctx.settings, contact)
        qr = continuation.qr_svg(link.url, title="QR: continue on your phone")
        return ContinueLink(url=link.url, qr_svg=qr, expires_at=link.expires_at)

    @strawberry.mutation(
        description="Contact token: send a link that opens this contact on another device, to my own "
        "saved email or phone; it works for a short while."
    )
    @returns_errors
    async def send_continue_link(self, info: strawberry.Info, channel: ChannelType) -> SendLinkResult:
        ctx = info.context
        contact = await ctx.contact()
        if contact is None:
            raise AuthFailed()
        masked = await continuation.send_continue_link(ctx.settings, ctx.plugins, contact, channel, ctx.client_ip)  # type: ignore[arg-type]
        return LinkSent(channel=channel, masked_recipient=masked)
