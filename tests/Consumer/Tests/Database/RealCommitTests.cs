using System.Net.Http.Json;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Async;
using NUnit.Framework;

namespace Consumer.Tests.Database;

/// <summary>A test that commits for real, through the application's API: the kit restores the table afterwards.</summary>
public sealed class RealCommitTests : DatabaseTest
{
    [Test]
    [RealCommits]
    public async Task A_request_of_a_real_commit_test_commits_to_the_database()
    {
        var client = Api.Client();
        using (var created = await client.PostAsync("/counters/committed", content: null))
            Assert.That(created.IsSuccessStatusCode, Is.True, await created.Content.ReadAsStringAsync());

        await using var outside = new AppDb(Run.AppOptions(TestRun.Database.ConnectionString));
        Assert.That(await outside.Counters.Select(c => c.Name).ToListAsync(), Is.EqualTo(new[] { "committed" }), "committed: a connection of its own sees it");
        Assert.That(await client.GetFromJsonAsync<string[]>("/counters"), Is.EqualTo(new[] { "committed" }));
    }
}

/// <summary>A class whose tests share a seed inserted once.</summary>
public sealed class SeededCounterTests : SeededDatabaseTest
{
    protected override async Task SeedAsync()
    {
        await using var db = new AppDb(Scope.Options);
        await db.InsertAsync(new Counter { Name = "seeded" });
    }

    [TestCase("one")]
    [TestCase("two")]
    public async Task Each_test_sees_the_seed_as_seeded(string name)
    {
        await using var db = new AppDb(Scope.Options);
        Assert.That(await db.Counters.Select(c => c.Name).ToListAsync(), Is.EqualTo(new[] { "seeded" }));
        await db.Counters.Where(c => c.Name == "seeded").Set(c => c.Name, name).UpdateAsync();
    }
}
