using Linq2DbTestKit.Conformance.App;
using LinqToDB;
using LinqToDB.Async;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// Tests that write the same table run in parallel and never see each other's rows, whatever they commit, in whatever
/// order they run: every one finds the table empty when it starts.
/// </summary>
[Parallelizable(ParallelScope.All)]
public abstract class ParallelIsolationSuite : ConformanceTest
{
    const int Tests = 24;
    const int RowsEach = 5;

    static IEnumerable<int> Cases() => Enumerable.Range(1, Tests);

    [TestCaseSource(nameof(Cases))]
    public async Task Each_test_sees_only_its_own_rows(int test)
    {
        using var db = NewShop();
        Assert.That(await db.Items.CountAsync(), Is.Zero, "the table is empty at the start of every test: nothing of another test is visible");

        for (var row = 1; row <= RowsEach; row++)
        {
            using var app = NewShop();
            await using var transaction = await app.BeginTransactionAsync();
            await app.InsertAsync(new Item { Name = Name($"{test}-{row}") });
            await transaction.CommitAsync();
            await Task.Yield();
        }

        Assert.That(await db.Items.CountAsync(), Is.EqualTo(RowsEach), "every row in the table is this test's own");
        Assert.That(await db.Items.CountAsync(i => i.Name.StartsWith(Tag)), Is.EqualTo(RowsEach));
    }
}
