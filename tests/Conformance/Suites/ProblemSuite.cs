using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Data;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// The problem the kit exists for, shown on linq2db itself: a test that hands the application its own transaction with
/// <c>UseTransaction</c> is not isolated, because the application commits it; the same application code in a scope leaves nothing.
/// </summary>
/// <remarks>Not parallel: the first test commits rows on purpose, and removes them.</remarks>
[NonParallelizable]
public abstract class ProblemSuite : ConformanceTest
{
    /// <summary>Application code as it is written outside tests: it owns its transaction.</summary>
    static void AddItemAndCommit(DataConnection db, string name)
    {
        db.BeginTransaction();
        db.Insert(new Item { Name = name });
        db.CommitTransaction();
    }

    [Test]
    public async Task Without_the_kit_the_application_commits_the_tests_transaction()
    {
        var database = TestRun.Database;
        await using var connection = Outside.Open();
        await using var testTransaction = await connection.BeginTransactionAsync();
        try
        {
            using (var db = new ShopDb(new DataOptions().UseTransaction(database.LinqToDBProvider, testTransaction)))
            {
                Assert.That(() => AddItemAndCommit(db, Name("naive")), Throws.InvalidOperationException.With.Message.Contains("already has transaction"),
                    "linq2db refuses an application transaction inside the test's");

                db.Insert(new Item { Name = Name("naive") });
                db.CommitTransaction();
            }

            Assert.That(() => testTransaction.Rollback(), Throws.InvalidOperationException, "the test's transaction is already over: the application committed it");
            Assert.That(await Outside.CountItemsAsync(Tag), Is.EqualTo(1), "the application's row is in the database for every other test to see");
        }
        finally
        {
            await Outside.ExecuteAsync($"DELETE FROM items WHERE name LIKE '{Tag}%'");
        }
    }

    [Test]
    public async Task With_both_a_connection_and_a_transaction_linq2db_takes_the_connection_and_drops_the_transaction()
    {
        var provider = TestRun.Database.LinqToDBProvider;
        await using var connection = Outside.Open();
        await using var testTransaction = await connection.BeginTransactionAsync();

        using var db = new ShopDb(new DataOptions().UseConnection(provider, connection).UseTransaction(provider, testTransaction));

        Assert.That(db.Transaction, Is.Null, "linq2db silently ignores the transaction when a connection is given too");
    }

    [Test]
    public async Task With_the_kit_the_same_application_code_leaves_nothing()
    {
        using (var db = NewShop())
        {
            AddItemAndCommit(db, Name("a"));
            AddItemAndCommit(db, Name("b"));
            Assert.That(await NamesAsync(db), Is.EqualTo(new[] { "a", "b" }), "the test sees what the application committed");
        }

        await EndScopeAndAssertNothingLeftAsync();
    }
}
