from __future__ import annotations

from tests.push.factories import make_notice, make_user, worker
from server.domain.models import Notice


async def test_smoke(app, wechat_state):
    u = await make_user("alice", follower=True)
    n = await make_notice(u)
    w = worker(app)
    await w.drain(timeout=5)
    await w.close()
    n = await Notice.get(id=n.id)
    print(n.state, n.reason, n.errcode, wechat_state.sent_messages())
    assert n.state == "sent"
