// The example of README.md, compiled and run as a test. Keep the two the same.
using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Async;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.Postgres;

public sealed class ReadmeExample : DatabaseTest
{
    [Test]
    public async Task What_the_application_commits_is_visible_in_the_test_and_gone_after_it()
    {
        await using var db = new ShopDb(Scope.Options);      // the application's own DataConnection subclass

        await using (var transaction = await db.BeginTransactionAsync())      // SAVEPOINT
        {
            await db.InsertAsync(new Item { Name = "apple" });
            await transaction.CommitAsync();                                   // RELEASE SAVEPOINT
        }

        Assert.That(await db.Items.CountAsync(i => i.Name == "apple"), Is.EqualTo(1));
    }                                                                          // ROLLBACK of the test's transaction
}
