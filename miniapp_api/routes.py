"""Mini-program routes: one named line per route."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.handlers import (
    auth,
    face,
    family,
    me,
    mutual_aid,
    notices,
    privacy,
    realname,
    subscriptions,
    voucher_password,
)


def routes() -> list[web.RouteDef]:
    apps = "/family/applications/{id}"
    members = "/family/members/{binding_id}"
    return [
        web.post("/auth/login", auth.login, name="auth_login"),
        web.post("/auth/refresh", auth.refresh, name="auth_refresh"),
        web.post("/auth/logout", auth.logout, name="auth_logout"),
        web.get("/me", me.get_me, name="me"),
        web.delete("/me", me.delete_me, name="me_delete"),
        web.get("/me/export", me.export, name="me_export"),
        web.get("/me/files/{kind}/{object_id}", me.download, name="me_file"),
        web.get("/mutual-aid/notice", mutual_aid.get_notice, name="mutual_aid_notice"),
        web.post("/mutual-aid/authorizations", mutual_aid.create_authorization, name="mutual_aid_authorize"),
        web.get("/mutual-aid/authorizations", mutual_aid.list_authorizations, name="mutual_aid_authorizations"),
        web.delete(
            "/mutual-aid/authorizations/{authorization_id}", mutual_aid.revoke_authorization, name="mutual_aid_revoke"
        ),
        web.get("/notices", notices.list_notices, name="notices"),
        web.post("/notices/subscriptions", subscriptions.report, name="notice_subscriptions"),
        # personal information (PIPL)
        web.get("/privacy/notice", privacy.get_notice, name="privacy_notice"),
        web.post("/privacy/consents", privacy.accept, name="privacy_consent"),
        web.get("/privacy/consents", privacy.list_consents, name="privacy_consents"),
        web.delete("/privacy/consents/{purpose}", privacy.withdraw, name="privacy_withdraw"),
        # 亲情账户
        web.post("/face/sessions", face.open_session, name="face_session"),
        web.post("/me/realname", realname.realname, name="me_realname"),
        web.get("/commitments/current", family.commitment_current, name="commitment_current"),
        web.post("/family/precheck", family.precheck, name="family_precheck"),
        web.post("/family/applications", family.create_application, name="family_apply"),
        web.get("/family/applications", family.list_applications, name="family_applications"),
        web.get(apps, family.get_application, name="family_application"),
        web.delete(apps, family.cancel_application, name="family_application_cancel"),
        web.post(apps + "/materials", family.upload_material, name="family_material_upload"),
        web.get(apps + "/materials/{material_id}", family.get_material, name="family_material"),
        web.delete(
            apps + "/materials/{material_id}", family.remove_material, name="family_material_remove"
        ),
        web.post(apps + "/commitment", family.sign_commitment, name="family_commitment_sign"),
        web.post(apps + "/submit", family.submit, name="family_submit"),
        web.get("/family/members", family.list_members, name="family_members"),
        web.delete(members, family.unbind, name="family_member_unbind"),
        web.get(members + "/voucher", family.voucher, name="family_member_voucher"),
        web.put(
            members + "/voucher-password", voucher_password.set_password, name="family_member_voucher_password"
        ),
        web.get(members + "/settlements", family.settlements, name="family_member_settlements"),
        web.get(members + "/summary", family.summary, name="family_member_summary"),
        web.get("/family/binders", family.list_binders, name="family_binders"),
        web.delete("/family/binders/{binding_id}", family.unbind_as_member, name="family_binder_unbind"),
    ]
