"""Group commit: concurrent judgements share a transaction, each fails or succeeds alone."""

import asyncio

import pytest

from feedback import Exchange, InvalidJudgement, Store, UnknownExchange
from serve.group_commit import GroupCommit


def test_concurrent_writes_are_batched_and_fail_alone(tmp_path):
    store = Store(tmp_path / "f.db")
    store.log_exchanges(
        [Exchange(id="x", model="m", engine_model="m", messages=[], completion="c")]
    )
    writes = GroupCommit(store)

    async def scenario():
        writes.start()
        good = [writes.run(store.add_rating, "x", 1, None, None, f"r{i}") for i in range(200)]
        bad = [writes.run(store.add_rating, "missing", 1), writes.run(store.add_rating, "x", 5)]
        results = await asyncio.gather(*good, *bad, return_exceptions=True)
        await writes.close()
        return results

    results = asyncio.run(scenario())
    ids = results[:200]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 200
    assert isinstance(results[200], UnknownExchange)
    assert isinstance(results[201], InvalidJudgement)
    reopened = Store(tmp_path / "f.db")  # acknowledged means committed
    assert reopened.query("select count(*) as n from ratings")[0]["n"] == 200


def test_without_a_running_writer_writes_go_straight_through():
    store = Store(None)
    store.log_exchanges(
        [Exchange(id="x", model="m", engine_model="m", messages=[], completion="c")]
    )
    assert asyncio.run(GroupCommit(store).run(store.add_rating, "x", -1)) == 1
    with pytest.raises(UnknownExchange):
        asyncio.run(GroupCommit(store).run(store.add_rating, "nope", -1))
