"""Personal information as the law asks (个人信息保护法, PIPL; SPEC.md "Personal
information"; issue #12). docs/privacy.md maps each article to what the product does.

==================  =====================================================================
``config``          the ``[privacy]`` settings (retention, export links, the job), typed
``records``         consent rows as facts (in force per purpose, who withdrew)
``consent``         the notice and separate consent per purpose; enforcement
                    (``CONSENT_REQUIRED``)
``links``           short-lived signed download links
``export``          ``GET /me/export``: everything held about the caller, streamed
``deletion``        ``DELETE /me``: withdraw all and delete the account, resumable
``retention``       materials purged a set time after the decision, each purge logged
``job``             the scheduled job (push worker process / embedded server)
``context``         ``privacy_ctx``: the services above on the app's resources
==================  =====================================================================
"""
