"""Delivery of 结算通知 through WeChat: the push worker and what it needs.

The ``notices`` table is the outbox: the domain writes its rows in the settlement's own
transaction (``server.domain.notices_outbox``, SPEC.md "Settlement notices"); this package
delivers them. It sits beside the domain, not in it: it reads the domain's models and
calls the WeChat gateway, and nothing in ``server.domain`` imports it.

* States: ``pending`` → ``sent`` (template message accepted; ``wx_msgid`` kept) →
  ``delivered`` | ``failed`` (TEMPLATESENDJOBFINISH event); a subscribe message is
  ``delivered`` once WeChat accepts it (no receipt exists); ``failed`` with ``errcode``
  and ``reason`` for permanent errors, after ``max_attempts`` transient ones, for a kind
  without templates or a notice whose message cannot be built; ``undeliverable`` with a
  reason when the person cannot be reached on WeChat. No notice is dropped silently.
* Claiming (:mod:`.leases`): ``SELECT … FOR UPDATE SKIP LOCKED`` stamps ``leased_by`` /
  ``lease_until``, so workers on many machines never claim the same row and a worker that
  dies (SIGKILL) leaves its rows to come due again when the lease ends; a worker that
  stops gives its unsent rows back at once.
* Channel (:mod:`.channels`, per attempt): an official-account follower with the
  recipient's unionid gets a template message; else a remaining one-time subscription for
  the kind's mini-program template gets a subscribe message; else ``undeliverable``.
* Retries and outages (:mod:`.dispatcher`, :mod:`.breaker`, :mod:`.worker`): transient
  errors come back after an exponential, jittered delay; a circuit breaker in Redis
  stops every worker's sends while WeChat is down; a round that fails on the database or
  Redis is retried after a growing pause, and the loop never dies.
* Crash window: a send WeChat accepted is recorded when its chunk is written. A worker
  killed between the two leaves those notices to be sent again by the next claimer: the
  only way a duplicate can happen (README "Push delivery").

Modules: ``config`` (the typed ``[push]`` table), ``templates`` (a notice's fields →
template keywords), ``channels`` (who gets what, grants), ``leases`` (the notices table
as a leased queue), ``breaker``, ``dispatcher`` (one batch: plan, send, record),
``receipts`` (TEMPLATESENDJOBFINISH), ``recipients`` (followers and subscribe grants the
bot and the mini-program report), ``metrics``, ``worker`` (the loop and the process).
"""
