using System.Net.Http.Json;
using Consumer.Shared;
using Linq2DbTestKit;
using Linq2DbTestKit.MSTest;
using Linq2DbTestKit.PostgreSql;
using Linq2DbTestKit.SqlServer;
using LinqToDB;
using LinqToDB.Async;
using Microsoft.VisualStudio.TestTools.UnitTesting;

[assembly: Parallelize(Scope = ExecutionScope.MethodLevel)]

namespace Consumer.MSTestTests;

[TestClass]
public sealed class Run() : DatabaseRun(TestKitEnvironment.SelectedProvider() == "sqlserver" ? SqlServerDatabaseProvider.Instance : PostgreSqlDatabaseProvider.Instance)
{
    [AssemblyInitialize]
    public static Task Start(TestContext context) => StartAsync<Run>(context);

    [AssemblyCleanup]
    public static Task End() => EndAsync();

    protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken) => ConsumerDatabase.PrepareAsync(database, cancellationToken);

    protected override ValueTask StopAsync() => ConsumerDatabase.StopAsync();
}

[TestClass]
public sealed class CounterTests : DatabaseTest
{
    [TestMethod]
    [DataRow("first")]
    [DataRow("second")]
    [DataRow("third")]
    public async Task A_context_the_code_builds_from_the_connection_string_joins_the_tests_scope(string name)
    {
        await using var db = new AppDb(ConsumerDatabase.AppOptions(DatabaseRun.Database.ConnectionString));
        Assert.AreEqual(0, await db.Counters.CountAsync());

        await using (var transaction = await db.BeginTransactionAsync())
        {
            await db.InsertAsync(new Counter { Name = name });
            await transaction.CommitAsync();
        }

        CollectionAssert.AreEqual(new[] { name }, await Db.GetTable<Counter>().Select(c => c.Name).ToListAsync());
        Assert.IsEmpty(Scope.Bypasses);
    }

    [TestMethod]
    public async Task A_request_to_the_api_runs_in_the_tests_scope()
    {
        var client = ConsumerDatabase.ClientFor(Scope);

        using (var created = await client.PostAsync("/counters/ada", content: null))
            Assert.IsTrue(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());

        CollectionAssert.AreEqual(new[] { "ada" }, await client.GetFromJsonAsync<string[]>("/counters"));
        CollectionAssert.AreEqual(new[] { "ada" }, await Db.GetTable<Counter>().Select(c => c.Name).ToListAsync());
    }

    /// <summary>Marked in a class whose other tests run in scopes: the mark is this test's alone, and the run's leak check sees it reset.</summary>
    [TestMethod]
    [RealCommits]
    public async Task A_real_commit_test_sees_what_a_connection_of_its_own_committed()
    {
        await ConsumerDatabase.InsertOnOwnConnectionAsync(DatabaseRun.Database, "committed");

        CollectionAssert.AreEqual(new[] { "committed" }, await Db.GetTable<Counter>().Select(c => c.Name).ToListAsync());
        Assert.AreSame(DatabaseRun.Database, RealCommits.Database);
    }
}

/// <summary>Fails on purpose, when tests/Consumer/run asks for it: its report must name the connection of its own.</summary>
[TestClass]
public sealed class DeliberateBypass : DatabaseTest
{
    [TestMethod]
    public async Task Writes_on_a_connection_of_its_own()
    {
        if (ConsumerDatabase.Deliberate != "bypass")
            Assert.Inconclusive("run by tests/Consumer/run with CONSUMER_DELIBERATE=bypass");
        await ConsumerDatabase.InsertOnOwnConnectionAsync(DatabaseRun.Database, "bypassed");
    }
}

/// <summary>Commits outside every scope, when tests/Consumer/run asks for it: the run's leak check must fail the run.</summary>
[TestClass]
public sealed class DeliberateLeak
{
    [TestMethod]
    public async Task Commits_outside_every_scope()
    {
        if (ConsumerDatabase.Deliberate != "leak")
            Assert.Inconclusive("run by tests/Consumer/run with CONSUMER_DELIBERATE=leak");
        await ConsumerDatabase.InsertOnOwnConnectionAsync(DatabaseRun.Database, "leaked");
    }
}
