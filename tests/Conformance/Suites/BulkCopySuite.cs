using Linq2DbTestKit.Conformance.App;
using LinqToDB;
using LinqToDB.Data;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>linq2db's provider-specific bulk copy (binary COPY, SqlBulkCopy) runs on the scope's connection, in the test's transaction.</summary>
public abstract class BulkCopySuite(Mode mode) : ConformanceTest
{
    [SetUp]
    public void SqlBulkCopyRunsWhereItCan() => BabelfishDifference.BulkCopyColumnList.SkipHere();

    Item[] Items(int count) => Enumerable.Range(1, count).Select(i => new Item { Name = Name($"bulk-{i:D4}"), Quantity = i }).ToArray();

    async Task<BulkCopyRowsCopied> CopyAsync(ShopDb db, Item[] items) =>
        mode == Mode.Async
            ? await db.BulkCopyAsync(new BulkCopyOptions { BulkCopyType = BulkCopyType.ProviderSpecific }, items)
            : db.BulkCopy(new BulkCopyOptions { BulkCopyType = BulkCopyType.ProviderSpecific }, items);

    /// <summary>linq2db traces its native bulk copy as INSERT [ASYNC] BULK; when it cannot reach the driver's connection it falls back, silently, to INSERT INTO … VALUES.</summary>
    void AssertNativeBulkCopy() =>
        Assert.That(Scope.Trace, Does.Match("INSERT (ASYNC )?BULK items").And.Not.Contain("INSERT INTO"), "the native bulk path ran, not linq2db's multi-row fallback");

    [Test]
    public async Task Provider_specific_bulk_copy_outside_an_application_transaction_runs_in_the_tests_transaction()
    {
        using var db = NewShop();
        var copied = await CopyAsync(db, Items(500));

        Assert.That(copied.RowsCopied, Is.EqualTo(500));
        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(500));
        AssertNativeBulkCopy();
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task Provider_specific_bulk_copy_of_a_context_the_application_built_itself_runs_natively_in_the_tests_transaction()
    {
        await using var db = ConstructionShapesSuite.Build(Construction.ProviderSpecificOptions);
        await using (var transaction = await db.BeginTransactionAsync())
        {
            var items = Items(200);
            var copied = mode == Mode.Async
                ? await db.BulkCopyAsync(new BulkCopyOptions { BulkCopyType = BulkCopyType.ProviderSpecific }, items)
                : db.BulkCopy(new BulkCopyOptions { BulkCopyType = BulkCopyType.ProviderSpecific }, items);
            Assert.That(copied.RowsCopied, Is.EqualTo(200));
            await transaction.CommitAsync();
        }

        using (var check = NewShop())
            Assert.That(check.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(200));
        Assert.That(Scope.Trace, Does.Contain("the application's DataConnection").And.Not.Contain("INSERT INTO"),
            "the rows went through the driver's own bulk path, not linq2db's INSERT fallback on the kit's connection");
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task Bulk_copy_inside_an_application_transaction_rolls_back_with_it()
    {
        using var db = NewShop();
        using (var transaction = db.BeginTransaction())
        {
            await CopyAsync(db, Items(50));
            Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(50));
            transaction.Rollback();
        }

        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.Zero);
        AssertNativeBulkCopy();
    }

    [Test]
    public async Task Bulk_copy_inside_a_committed_application_transaction_is_gone_after_the_test()
    {
        using var db = NewShop();
        using (var transaction = db.BeginTransaction())
        {
            await CopyAsync(db, Items(50));
            transaction.Commit();
        }

        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(50));
        await EndScopeAndAssertNothingLeftAsync();
    }
}
