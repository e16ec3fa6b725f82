using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Persistence.Sql;
using Microsoft.Data.Sqlite;

namespace Ferret.Coordinator.Tests.Persistence;

/// <summary>What the private-round store promises on every database: stages freeze, one message per client per stage, nothing lost on reopening.</summary>
public abstract partial class RoundLogContract
{
    private static readonly DateTimeOffset P0 = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    private IPrivateRoundStore NewPrivateRounds()
    {
        var db = CreateDatabase();
        _opened.Add(db);
        var store = new SqlPrivateRoundStore(db);
        store.OpenRound(new PrivateRoundRecord("exp-1", 1, 10, 4, 2.5, PrivateStage.AdvertiseKeys, P0.AddSeconds(30)));
        return store;
    }

    [SkippableFact]
    public void A_private_round_keeps_its_public_numbers_and_stage_across_reopening()
    {
        var store = NewPrivateRounds();
        Assert.Equal(StageMessageOutcome.Accepted, store.RecordMessage("exp-1", 1, "a", PrivateStage.AdvertiseKeys, [1, 2, 3], P0));
        Assert.True(store.AdvanceStage("exp-1", 1, PrivateStage.AdvertiseKeys, PrivateStage.ShareKeys, P0.AddSeconds(60)), "the first advance should succeed");

        SqliteConnection.ClearAllPools();
        var reopenedDb = ReopenDatabase();
        _opened.Add(reopenedDb);
        var reopened = new SqlPrivateRoundStore(reopenedDb);
        Assert.Equal(new PrivateRoundRecord("exp-1", 1, 10, 4, 2.5, PrivateStage.ShareKeys, P0.AddSeconds(60)), reopened.GetRound("exp-1", 1));
        Assert.Equal(new byte[] { 1, 2, 3 }, reopened.GetMessage("exp-1", 1, PrivateStage.AdvertiseKeys, "a"));
        Assert.Null(reopened.GetRound("exp-1", 2));
    }

    [SkippableFact]
    public void A_stage_takes_one_message_per_client_and_nothing_after_it_froze()
    {
        var store = NewPrivateRounds();
        Assert.Equal(StageMessageOutcome.Accepted, store.RecordMessage("exp-1", 1, "a", PrivateStage.AdvertiseKeys, [1], P0));
        Assert.Equal(StageMessageOutcome.Accepted, store.RecordMessage("exp-1", 1, "b", PrivateStage.AdvertiseKeys, [2, 2], P0));
        Assert.Equal(StageMessageOutcome.Duplicate, store.RecordMessage("exp-1", 1, "a", PrivateStage.AdvertiseKeys, [9], P0));
        Assert.Equal(StageMessageOutcome.WrongStage, store.RecordMessage("exp-1", 1, "c", PrivateStage.ShareKeys, [3], P0));
        Assert.Equal(StageMessageOutcome.NoSuchRound, store.RecordMessage("exp-1", 7, "a", PrivateStage.AdvertiseKeys, [1], P0));

        Assert.True(store.AdvanceStage("exp-1", 1, PrivateStage.AdvertiseKeys, PrivateStage.ShareKeys, P0.AddSeconds(60)), "advance from the current stage");
        Assert.False(store.AdvanceStage("exp-1", 1, PrivateStage.AdvertiseKeys, PrivateStage.ShareKeys, P0.AddSeconds(90)), "a second advance from a stage already left must fail (compare-and-set)");
        Assert.Equal(StageMessageOutcome.WrongStage, store.RecordMessage("exp-1", 1, "c", PrivateStage.AdvertiseKeys, [3], P0));

        Assert.Equal(new byte[] { 1 }, store.GetMessage("exp-1", 1, PrivateStage.AdvertiseKeys, "a"));
        Assert.Null(store.GetMessage("exp-1", 1, PrivateStage.AdvertiseKeys, "c"));
        var messages = store.GetMessages("exp-1", 1, PrivateStage.AdvertiseKeys);
        Assert.Equal(["a", "b"], messages.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["a", "b"], store.Answered("exp-1", 1, PrivateStage.AdvertiseKeys).Order(StringComparer.Ordinal));
        Assert.Empty(store.Answered("exp-1", 1, PrivateStage.ShareKeys));
        Assert.Equal(3, store.MessageBytes("exp-1", 1));
    }

    [SkippableFact]
    public void Opening_a_private_round_again_replaces_its_record_and_drops_its_messages()
    {
        var store = NewPrivateRounds();
        Assert.Equal(StageMessageOutcome.Accepted, store.RecordMessage("exp-1", 1, "a", PrivateStage.AdvertiseKeys, [1], P0));
        store.OpenRound(new PrivateRoundRecord("exp-1", 1, 12, 6, 3.0, PrivateStage.Packets, P0.AddSeconds(99)));
        Assert.Equal(new PrivateRoundRecord("exp-1", 1, 12, 6, 3.0, PrivateStage.Packets, P0.AddSeconds(99)), store.GetRound("exp-1", 1));
        Assert.Equal(0, store.MessageBytes("exp-1", 1));
    }
}
