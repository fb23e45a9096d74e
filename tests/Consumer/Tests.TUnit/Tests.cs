using System.Net.Http.Json;
using Consumer.Shared;
using Linq2DbTestKit;
using Linq2DbTestKit.PostgreSql;
using Linq2DbTestKit.SqlServer;
using Linq2DbTestKit.TUnit;
using LinqToDB;
using LinqToDB.Async;

namespace Consumer.TUnitTests;

public sealed class Run() : TestRun(TestKitEnvironment.SelectedProvider() == "sqlserver" ? SqlServerDatabaseProvider.Instance : PostgreSqlDatabaseProvider.Instance)
{
    protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken) => ConsumerDatabase.PrepareAsync(database, cancellationToken);

    protected override ValueTask StopAsync() => ConsumerDatabase.StopAsync();
}

public sealed class CounterTests : DatabaseTest
{
    [Test]
    [Arguments("first")]
    [Arguments("second")]
    [Arguments("third")]
    public async Task A_context_the_code_builds_from_the_connection_string_joins_the_tests_scope(string name)
    {
        await using var db = new AppDb(ConsumerDatabase.AppOptions(TestRun.Database.ConnectionString));
        await Assert.That(await db.Counters.CountAsync()).IsEqualTo(0);

        await using (var transaction = await db.BeginTransactionAsync())
        {
            await db.InsertAsync(new Counter { Name = name });
            await transaction.CommitAsync();
        }

        await Assert.That(await Db.GetTable<Counter>().Select(c => c.Name).ToListAsync()).IsEquivalentTo([name]);
        await Assert.That(Scope.Bypasses).IsEmpty();
    }

    [Test]
    public async Task A_request_to_the_api_runs_in_the_tests_scope()
    {
        var client = ConsumerDatabase.ClientFor(Scope);

        using (var created = await client.PostAsync("/counters/ada", content: null))
            await Assert.That(created.IsSuccessStatusCode).IsTrue().Because(await created.Content.ReadAsStringAsync());

        await Assert.That(await client.GetFromJsonAsync<string[]>("/counters") ?? []).IsEquivalentTo(["ada"]);
        await Assert.That(await Db.GetTable<Counter>().Select(c => c.Name).ToListAsync()).IsEquivalentTo(["ada"]);
    }
}

/// <summary>Fails on purpose, when tests/Consumer/run asks for it: its report must name the connection of its own.</summary>
public sealed class DeliberateBypass : DatabaseTest
{
    [Test]
    public async Task Writes_on_a_connection_of_its_own()
    {
        Skip.Unless(ConsumerDatabase.Deliberate == "bypass", "run by tests/Consumer/run with CONSUMER_DELIBERATE=bypass");
        await ConsumerDatabase.InsertOnOwnConnectionAsync(TestRun.Database, "bypassed");
    }
}

/// <summary>Commits outside every scope, when tests/Consumer/run asks for it: the run's leak check must fail the run.</summary>
public sealed class DeliberateLeak
{
    [Test]
    public async Task Commits_outside_every_scope()
    {
        Skip.Unless(ConsumerDatabase.Deliberate == "leak", "run by tests/Consumer/run with CONSUMER_DELIBERATE=leak");
        await ConsumerDatabase.InsertOnOwnConnectionAsync(TestRun.Database, "leaked");
    }
}
