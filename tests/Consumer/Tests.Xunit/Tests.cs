using System.Net.Http.Json;
using Consumer.Shared;
using Linq2DbTestKit;
using Linq2DbTestKit.PostgreSql;
using Linq2DbTestKit.SqlServer;
using Linq2DbTestKit.Xunit;
using LinqToDB;
using LinqToDB.Async;
using Xunit;

[assembly: AssemblyFixture(typeof(Consumer.XunitTests.Run))]

namespace Consumer.XunitTests;

public sealed class Run() : TestRun(TestKitEnvironment.SelectedProvider() == "sqlserver" ? SqlServerDatabaseProvider.Instance : PostgreSqlDatabaseProvider.Instance)
{
    protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken) => ConsumerDatabase.PrepareAsync(database, cancellationToken);

    public override async ValueTask DisposeAsync()
    {
        await ConsumerDatabase.StopAsync();
        await base.DisposeAsync();
    }
}

public sealed class CounterTests : DatabaseTest
{
    [Theory]
    [InlineData("first")]
    [InlineData("second")]
    [InlineData("third")]
    public async Task A_context_the_code_builds_from_the_connection_string_joins_the_tests_scope(string name)
    {
        await using var db = new AppDb(ConsumerDatabase.AppOptions(TestRun.Database.ConnectionString));
        Assert.Equal(0, await db.Counters.CountAsync(TestContext.Current.CancellationToken));

        await using (var transaction = await db.BeginTransactionAsync(TestContext.Current.CancellationToken))
        {
            await db.InsertAsync(new Counter { Name = name }, token: TestContext.Current.CancellationToken);
            await transaction.CommitAsync(TestContext.Current.CancellationToken);
        }

        Assert.Equal([name], await Db.GetTable<Counter>().Select(c => c.Name).ToListAsync(TestContext.Current.CancellationToken));
        Assert.Empty(Scope.Bypasses);
    }

    [Fact]
    public async Task A_request_to_the_api_runs_in_the_tests_scope()
    {
        var client = ConsumerDatabase.ClientFor(Scope);

        using (var created = await client.PostAsync("/counters/ada", content: null, TestContext.Current.CancellationToken))
            Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));

        Assert.Equal(["ada"], await client.GetFromJsonAsync<string[]>("/counters", TestContext.Current.CancellationToken) ?? []);
        Assert.Equal(["ada"], await Db.GetTable<Counter>().Select(c => c.Name).ToListAsync(TestContext.Current.CancellationToken));
    }
}

/// <summary>Fails on purpose, when tests/Consumer/run asks for it: its report must name the connection of its own.</summary>
public sealed class DeliberateBypass : DatabaseTest
{
    [Fact]
    public async Task Writes_on_a_connection_of_its_own()
    {
        Assert.SkipUnless(ConsumerDatabase.Deliberate == "bypass", "run by tests/Consumer/run with CONSUMER_DELIBERATE=bypass");
        await ConsumerDatabase.InsertOnOwnConnectionAsync(TestRun.Database, "bypassed");
    }
}

/// <summary>Commits outside every scope, when tests/Consumer/run asks for it: the run's leak check must fail the run.</summary>
public sealed class DeliberateLeak
{
    [Fact]
    public async Task Commits_outside_every_scope()
    {
        Assert.SkipUnless(ConsumerDatabase.Deliberate == "leak", "run by tests/Consumer/run with CONSUMER_DELIBERATE=leak");
        await ConsumerDatabase.InsertOnOwnConnectionAsync(TestRun.Database, "leaked");
    }
}
