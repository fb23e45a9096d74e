using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Async;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// A class of 20 tests that share one seed, inserted once: each sees it exactly as seeded although each changes it,
/// through nested application transactions too; the tests take turns although the class asks to run them in parallel.
/// The run's final look and leak check show that nothing of the seed outlives the class.
/// </summary>
[Parallelizable(ParallelScope.All)]
public abstract class SharedSeedSuite : SeededDatabaseTest
{
    static int running;

    readonly string _tag = $"seed{Guid.NewGuid():N}"[..16];
    int _seeds;

    protected override async Task SeedAsync()
    {
        _seeds++;
        await using var db = new ShopDb(Scope.Options);
        await using var transaction = await db.BeginTransactionAsync();
        foreach (var name in new[] { "anchor", "bolt", "chain" })
        {
            var id = await db.InsertWithInt64IdentityAsync(new Item { Name = $"{_tag}-{name}", Quantity = 10 });
            await db.InsertAsync(new ItemNote { ItemId = id, Text = $"note of {name}" });
        }

        await transaction.CommitAsync();
    }

    static IEnumerable<int> Twenty => Enumerable.Range(1, 20);

    [TestCaseSource(nameof(Twenty))]
    public async Task Each_test_sees_the_seed_unchanged_although_each_changes_it(int number)
    {
        Assert.That(Interlocked.Increment(ref running), Is.EqualTo(1), "the tests of a class that shares a seed run one at a time");
        try
        {
            Assert.That(_seeds, Is.EqualTo(1), "the seed ran once for the class");
            await using var db = new ShopDb(Scope.Options);
            var items = db.Items.Where(i => i.Name.StartsWith(_tag));
            Assert.That(await items.OrderBy(i => i.Name).Select(i => new { i.Name, i.Quantity, Notes = i.Notes.Count }).ToListAsync(),
                Is.EqualTo(new[] { new { Name = $"{_tag}-anchor", Quantity = 10, Notes = 1 }, new { Name = $"{_tag}-bolt", Quantity = 10, Notes = 1 }, new { Name = $"{_tag}-chain", Quantity = 10, Notes = 1 } }));

            await items.Where(i => i.Name == $"{_tag}-anchor").Set(i => i.Quantity, number).UpdateAsync();
            await db.Notes.Where(n => n.Text == "note of bolt").DeleteAsync();
            await using (var transaction = await db.BeginTransactionAsync())
            {
                await db.InsertAsync(new Item { Name = $"{_tag}-extra-{number}" });
                await using (var other = new ShopDb(Scope.Options))
                await using (var inner = await other.BeginTransactionAsync())
                {
                    await other.Notes.Where(n => n.Text == "note of chain").DeleteAsync();
                    await other.Items.Where(i => i.Name == $"{_tag}-chain").DeleteAsync();
                    await inner.RollbackAsync();
                }

                await transaction.CommitAsync();
            }

            Assert.That(await items.CountAsync(), Is.EqualTo(4));
            Assert.That(await Outside.CountItemsAsync(_tag), Is.Zero, "the seed and the test's changes are uncommitted: nobody outside sees them");
        }
        finally
        {
            Interlocked.Decrement(ref running);
        }
    }
}
