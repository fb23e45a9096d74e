using System.Net.Http.Json;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Async;
using NUnit.Framework;

namespace Consumer.Tests.Database;

public sealed class CounterTests : DatabaseTest
{
    [TestCase("first")]
    [TestCase("second")]
    [TestCase("third")]
    public async Task What_the_application_commits_is_seen_by_its_test_alone(string name)
    {
        await using var db = new AppDb(Scope.Options);
        Assert.That(await db.Counters.CountAsync(), Is.Zero, "no other test's commit is visible");

        await using (var transaction = await db.BeginTransactionAsync())
        {
            await db.InsertAsync(new Counter { Name = name });
            await transaction.CommitAsync();
        }

        Assert.That(await db.Counters.Select(c => c.Name).ToListAsync(), Is.EqualTo(new[] { name }));
    }

    [Test]
    public async Task A_request_to_the_api_runs_in_the_tests_scope()
    {
        var client = Api.ClientFor(Scope);

        using (var created = await client.PostAsync("/counters/ada", content: null))
            Assert.That(created.IsSuccessStatusCode, Is.True, await created.Content.ReadAsStringAsync());

        Assert.That(await client.GetFromJsonAsync<string[]>("/counters"), Is.EqualTo(new[] { "ada" }));
        Assert.That(await Db.GetTable<Counter>().Select(c => c.Name).ToListAsync(), Is.EqualTo(new[] { "ada" }), "the test sees what the request committed");
    }

    [Test]
    public async Task A_context_the_code_builds_from_the_connection_string_joins_the_scope()
    {
        await using (var own = new AppDb(Run.AppOptions(TestRun.Database.ConnectionString)))
            await own.InsertAsync(new Counter { Name = "built by the code" });

        Assert.That(await Db.GetTable<Counter>().CountAsync(), Is.EqualTo(1));
        Assert.That(Scope.Bypasses, Is.Empty);
    }
}
