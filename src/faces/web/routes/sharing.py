"""Sharing in the web app: contacts and their groups, the library's view/write lists (the lock dialogs),
per-image visibility, notifications, "photos of me" with self-removal, statistics and deletion.

Every route works on the logged-in user's own data, or checks the id through :mod:`faces.sharing`
(ids of someone else's data answer 404, so they reveal nothing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from faces.sharing import contacts, deletion, groups, notifications, permissions, photos_of_me, stats
from faces.sharing.admin_settings import set_base_settings
from faces.sharing.errors import SharingError
from faces.store.models import Face, Image
from faces.web.deps import Account, CurrentUser, DbSession, LoggedInUser, State, render, web_state


async def _remember_settings(request: Request) -> None:
    # so that event subscribers (e-mail, thumbnails) know this process's data directory and SMTP settings
    set_base_settings(web_state(request).settings)


router = APIRouter(tags=["sharing"], dependencies=[Depends(_remember_settings)])


def http_error(exc: SharingError) -> HTTPException:
    """The HTTP error for a refused sharing request (its message is a sentence for people)."""
    text = str(exc)
    text = text[:1].upper() + text[1:]
    if not text.endswith("."):
        text += "."
    return HTTPException(exc.status_code, text)


# --- models ---------------------------------------------------------------------------------------------------


class ContactOut(BaseModel):
    user_id: int
    username: str
    display_name: str
    request_id: int | None = None


class ContactsOut(BaseModel):
    """The user's contacts and the pending requests (incoming ones carry the id to answer)."""

    contacts: list[ContactOut]
    incoming: list[ContactOut]
    outgoing: list[ContactOut]


class ContactRequestIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)


class AnswerIn(BaseModel):
    accept: bool


class GroupOut(BaseModel):
    id: int
    name: str
    members: list[ContactOut]


class GroupIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class AccessListIO(BaseModel):
    """One list of the library (view or write). ``default``: no entries, the admin's default applies.
    ``contacts``: "allow" or "deny" all contacts, or null. An otherwise empty list means the owner only."""

    default: bool = True
    contacts: Literal["allow", "deny"] | None = None
    allow_users: list[int] = Field(default_factory=list, max_length=1000)
    deny_users: list[int] = Field(default_factory=list, max_length=1000)
    allow_groups: list[int] = Field(default_factory=list, max_length=1000)
    deny_groups: list[int] = Field(default_factory=list, max_length=1000)


class PermissionsOut(BaseModel):
    view: AccessListIO
    write: AccessListIO


class VisibilityIn(BaseModel):
    visibility: Literal["private", "contacts", "group", "public"]
    group_id: int | None = None


class VisibilityOut(BaseModel):
    image_id: int
    visibility: str
    group_id: int | None


class NotificationOut(BaseModel):
    id: int
    kind: str
    text: str
    link: str
    created_at: datetime
    read: bool


class NotificationsOut(BaseModel):
    unread: int
    items: list[NotificationOut]


class ReadIn(BaseModel):
    id: int | None = Field(default=None, description="One notification; none: all of them.")


class RemovedOut(BaseModel):
    face_id: int
    removed: bool = True


class ConfirmIn(BaseModel):
    confirm: str = Field(description="Your user name, typed again, to confirm.", max_length=64)


class DeletedOut(BaseModel):
    images: int
    faces: int
    names: int


def _contact(c: contacts.ContactInfo) -> ContactOut:
    return ContactOut(user_id=c.user_id, username=c.username, display_name=c.display_name, request_id=c.request_id)


def _access(a: permissions.AccessList) -> AccessListIO:
    return AccessListIO(default=a.default, contacts=a.contacts, allow_users=a.allow_users, deny_users=a.deny_users,
                        allow_groups=a.allow_groups, deny_groups=a.deny_groups)


# --- contacts -------------------------------------------------------------------------------------------------


def _contacts_out(db, user_id: int) -> ContactsOut:  # noqa: ANN001
    incoming, outgoing = contacts.pending_requests(db, user_id)
    return ContactsOut(contacts=[_contact(c) for c in contacts.list_contacts(db, user_id)],
                       incoming=[_contact(c) for c in incoming], outgoing=[_contact(c) for c in outgoing])


@router.get("/api/contacts", response_model=ContactsOut)
def list_contacts(user: LoggedInUser, db: DbSession) -> ContactsOut:
    """Your contacts, and the requests waiting for an answer."""
    return _contacts_out(db, user.id)


@router.post("/api/contacts", response_model=ContactsOut, status_code=201)
def request_contact(body: ContactRequestIn, user: LoggedInUser, db: DbSession) -> ContactsOut:
    """Ask the user ``username`` to become your contact (accepted at once if they asked you first)."""
    try:
        contacts.request_contact(db, user.id, body.username)
    except SharingError as exc:
        raise http_error(exc) from None
    return _contacts_out(db, user.id)


@router.post("/api/contacts/requests/{request_id}", response_model=ContactsOut)
def answer_request(request_id: int, body: AnswerIn, user: LoggedInUser, db: DbSession) -> ContactsOut:
    """Accept or decline a request sent to you."""
    try:
        contacts.respond(db, user.id, request_id, body.accept)
    except SharingError as exc:
        raise http_error(exc) from None
    return _contacts_out(db, user.id)


@router.delete("/api/contacts/{user_id}", response_model=ContactsOut)
def remove_contact(user_id: int, user: LoggedInUser, db: DbSession) -> ContactsOut:
    """End the connection with a contact (or withdraw your request)."""
    try:
        contacts.remove_contact(db, user.id, user_id)
    except SharingError as exc:
        raise http_error(exc) from None
    return _contacts_out(db, user.id)


# --- groups of contacts ---------------------------------------------------------------------------------------


def _groups_out(db, owner_id: int) -> list[GroupOut]:  # noqa: ANN001
    return [GroupOut(id=g.id, name=g.name, members=[_contact(m) for m in g.members])
            for g in groups.list_groups(db, owner_id)]


@router.get("/api/contact-groups", response_model=list[GroupOut])
def list_contact_groups(user: LoggedInUser, db: DbSession) -> list[GroupOut]:
    """Your groups of contacts with their members."""
    return _groups_out(db, user.id)


@router.post("/api/contact-groups", response_model=list[GroupOut], status_code=201)
def create_contact_group(body: GroupIn, user: LoggedInUser, db: DbSession) -> list[GroupOut]:
    """Create a group of contacts."""
    try:
        groups.create_group(db, user.id, body.name)
    except SharingError as exc:
        raise http_error(exc) from None
    return _groups_out(db, user.id)


@router.patch("/api/contact-groups/{group_id}", response_model=list[GroupOut])
def rename_contact_group(group_id: int, body: GroupIn, user: LoggedInUser, db: DbSession) -> list[GroupOut]:
    """Rename one of your groups."""
    try:
        groups.rename_group(db, user.id, group_id, body.name)
    except SharingError as exc:
        raise http_error(exc) from None
    return _groups_out(db, user.id)


@router.delete("/api/contact-groups/{group_id}", response_model=list[GroupOut])
def delete_contact_group(group_id: int, user: LoggedInUser, db: DbSession) -> list[GroupOut]:
    """Delete one of your groups (images only it could see become private)."""
    try:
        groups.delete_group(db, user.id, group_id)
    except SharingError as exc:
        raise http_error(exc) from None
    return _groups_out(db, user.id)


@router.put("/api/contact-groups/{group_id}/members/{user_id}", response_model=list[GroupOut])
def add_group_member(group_id: int, user_id: int, user: LoggedInUser, db: DbSession) -> list[GroupOut]:
    """Put a contact into one of your groups."""
    try:
        groups.add_member(db, user.id, group_id, user_id)
    except SharingError as exc:
        raise http_error(exc) from None
    return _groups_out(db, user.id)


@router.delete("/api/contact-groups/{group_id}/members/{user_id}", response_model=list[GroupOut])
def remove_group_member(group_id: int, user_id: int, user: LoggedInUser, db: DbSession) -> list[GroupOut]:
    """Take a contact out of one of your groups."""
    try:
        groups.remove_member(db, user.id, group_id, user_id)
    except SharingError as exc:
        raise http_error(exc) from None
    return _groups_out(db, user.id)


# --- permissions ----------------------------------------------------------------------------------------------


def _permissions_out(db, owner_id: int) -> PermissionsOut:  # noqa: ANN001
    return PermissionsOut(view=_access(permissions.get_access_list(db, owner_id, "view")),
                          write=_access(permissions.get_access_list(db, owner_id, "write")))


@router.get("/api/permissions", response_model=PermissionsOut)
def get_permissions(user: LoggedInUser, db: DbSession) -> PermissionsOut:
    """Who may view and who may name the faces of your library, as set."""
    return _permissions_out(db, user.id)


@router.put("/api/permissions/{kind}", response_model=PermissionsOut)
def set_permissions(kind: Literal["view", "write"], body: AccessListIO, user: LoggedInUser,
                    db: DbSession) -> PermissionsOut:
    """Replace your library's view or write list (deny wins over allow)."""
    try:
        permissions.set_access_list(db, user.id, permissions.AccessList(kind, **body.model_dump()))
    except SharingError as exc:
        raise http_error(exc) from None
    return _permissions_out(db, user.id)


def _own_image(db, user: Account, image_id: int) -> Image:  # noqa: ANN001
    image = db.get(Image, image_id)
    if image is None or not permissions.can_view_image(db, user.id, image):
        raise HTTPException(404, "There is no image with this id that you may see.")
    if not permissions.is_owner(user.id, image.owner_id):
        raise HTTPException(403, "Only the owner of the image may do this.")
    return image


class VisibilityChoicesOut(VisibilityOut):
    """The image's visibility and the owner's groups it can be given to."""

    groups: list[GroupOut]


@router.get("/api/images/{image_id}/visibility", response_model=VisibilityChoicesOut)
def get_visibility(image_id: int, user: LoggedInUser, db: DbSession) -> VisibilityChoicesOut:
    """Who may view this image of yours, and your groups to choose from."""
    image = _own_image(db, user, image_id)
    return VisibilityChoicesOut(image_id=image.id, visibility=image.visibility.value,
                                group_id=image.visibility_group_id, groups=_groups_out(db, user.id))


@router.put("/api/images/{image_id}/visibility", response_model=VisibilityOut)
def set_visibility(image_id: int, body: VisibilityIn, user: LoggedInUser, db: DbSession) -> VisibilityOut:
    """Who may view this image: private, your contacts, one of your groups, or everybody."""
    _own_image(db, user, image_id)
    try:
        image = permissions.set_image_visibility(db, user.id, image_id, body.visibility, body.group_id)
    except SharingError as exc:
        raise http_error(exc) from None
    return VisibilityOut(image_id=image.id, visibility=image.visibility.value, group_id=image.visibility_group_id)


@router.delete("/api/images/{image_id}", response_model=DeletedOut)
def delete_image(image_id: int, user: LoggedInUser, db: DbSession, state: State) -> DeletedOut:
    """Delete an image of yours with its faces (a name no face uses any more goes too). A file you uploaded
    goes too; files in your own folders stay."""
    _own_image(db, user, image_id)
    try:
        report = deletion.delete_image(db, user.id, image_id, state.settings)
    except SharingError as exc:
        raise http_error(exc) from None
    return DeletedOut(**report.__dict__)


# --- notifications and photos of me ---------------------------------------------------------------------------


@router.get("/api/notifications", response_model=NotificationsOut)
def get_notifications(user: LoggedInUser, db: DbSession,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50) -> NotificationsOut:
    """Your latest notifications and how many are unread."""
    items = [NotificationOut(**n.__dict__) for n in notifications.list_notifications(db, user.id, limit)]
    return NotificationsOut(unread=notifications.unread_count(db, user.id), items=items)


@router.post("/api/notifications/read", response_model=NotificationsOut)
def read_notifications(body: ReadIn, user: LoggedInUser, db: DbSession) -> NotificationsOut:
    """Mark one notification, or all, read."""
    try:
        notifications.mark_read(db, user.id, body.id)
    except SharingError as exc:
        raise http_error(exc) from None
    return get_notifications(user, db)


@router.get("/api/me/photos", response_model=list[photos_of_me.TaggedFace])
def photos_of_me_list(user: LoggedInUser, db: DbSession) -> list[photos_of_me.TaggedFace]:
    """Every face, in every library here, that someone named after your account."""
    return photos_of_me.tagged_faces(db, user.id)


def _tagged_face(db, user: Account, face_id: int) -> Face:  # noqa: ANN001
    for item in photos_of_me.tagged_faces(db, user.id):
        if item.face_id == face_id and item.may_view_image:
            return db.get(Face, face_id)
    raise HTTPException(404, "There is no photo of you with this id that you may see.")


@router.get("/api/me/photos/{face_id}/thumb", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def photo_of_me_thumb(face_id: int, user: LoggedInUser, db: DbSession, state: State,
                      size: Annotated[int, Query(ge=16, le=512)] = 192):
    """Your face in someone's photo (only where you may view the image)."""
    from faces.media import cached_face_thumbnail
    from faces.media.types import MediaError

    face = _tagged_face(db, user, face_id)
    size = next((s for s in (96, 192, 384) if s >= size), 384)
    try:
        data = cached_face_thumbnail(state.settings.data_dir, face.image.path, face.id, tuple(face.box), size,
                                     max_pixels=state.settings.max_image_pixels)
    except MediaError as exc:
        raise HTTPException(422, exc.message) from None
    except FileNotFoundError:
        raise HTTPException(410, "The image file is not on the server any more.") from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.post("/api/me/photos/{face_id}/remove", response_model=RemovedOut)
def remove_me(face_id: int, user: LoggedInUser, db: DbSession) -> RemovedOut:
    """Remove yourself from this face, for good: it is never named or guessed again."""
    try:
        photos_of_me.remove_me(db, user.id, face_id)
    except SharingError as exc:
        raise http_error(exc) from None
    return RemovedOut(face_id=face_id)


# --- statistics and deletion of one's own faces ---------------------------------------------------------------


@router.get("/api/stats")
def my_stats(user: LoggedInUser, db: DbSession) -> dict:
    """The statistics of your library."""
    return stats.owner_stats(db, user.id)


@router.post("/api/library/delete-faces", response_model=DeletedOut)
def delete_my_faces(body: ConfirmIn, user: LoggedInUser, db: DbSession, state: State) -> DeletedOut:
    """Delete all faces and names of your library (the photos stay). Confirm with your user name."""
    if body.confirm.strip() != user.username:
        raise HTTPException(400, "Type your user name to confirm; nothing was deleted.")
    try:
        report = deletion.delete_library_faces(db, user.id, state.settings)
    except SharingError as exc:
        raise http_error(exc) from None
    return DeletedOut(**report.__dict__)


# --- pages ----------------------------------------------------------------------------------------------------


def _login(request: Request) -> RedirectResponse:
    from urllib.parse import quote

    return RedirectResponse(f"/login?next={quote(request.url.path, safe='')}", status_code=303)


@router.get("/sharing", include_in_schema=False)
def sharing_page(request: Request, user: CurrentUser):
    if user is None:
        return _login(request)
    return render(request, "sharing.html", user)


@router.get("/me/photos", include_in_schema=False)
def photos_of_me_page(request: Request, user: CurrentUser):
    if user is None:
        return _login(request)
    return render(request, "sharing_photos.html", user)


@router.get("/stats", include_in_schema=False)
def stats_page(request: Request, user: CurrentUser):
    if user is None:
        return _login(request)
    return render(request, "sharing_stats.html", user)
