using Linq2DbTestKit;
using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.NUnit;
using Linq2DbTestKit.PostgreSql;
using System.Net.Http.Json;
using LinqToDB;
using LinqToDB.Data;
using Microsoft.AspNetCore.Mvc.Testing;
using NUnit.Framework;

namespace PerTestCost.Kit;

[SetUpFixture]
public sealed class KitRun() : TestRun(PostgreSqlDatabaseProvider.Instance)
{
    protected override async Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken)
    {
        await using var db = new DataConnection(new DataOptions().UsePostgreSQL(database.ConnectionString));
        foreach (var statement in Work.Schema())
            await db.ExecuteAsync(statement, cancellationToken);
    }
}

/// <summary>The kit as most users run it: a class derived from DatabaseTest, the application's context on the scope.</summary>
public sealed class WithDatabaseTest : DatabaseTest
{
    [TestCaseSource(typeof(Work), nameof(Work.Cases))]
    public async Task Insert_and_count(int test)
    {
        await using var db = new AppDb(Scope.Options);
        Assert.That(await Work.InsertAndCountAsync(db, test), Is.EqualTo(1));
    }
}

/// <summary>The scope alone: begun in [SetUp], disposed in [TearDown], no DatabaseTest.</summary>
public sealed class WithScopeAlone
{
    TestScope _scope = null!;

    [SetUp]
    public async Task Begin() => _scope = await TestRun.Database.BeginScopeAsync();

    [TearDown]
    public async Task End() => await _scope.DisposeAsync();

    [TestCaseSource(typeof(Work), nameof(Work.Cases))]
    public async Task Insert_and_count(int test)
    {
        await using var db = new AppDb(_scope.Options);
        Assert.That(await Work.InsertAndCountAsync(db, test), Is.EqualTo(1));
    }
}

/// <summary>The ASP.NET Core path: one request per test through the kit's override, which reads the row the test wrote, in the test's scope.</summary>
public sealed class WithAspNet : DatabaseTest
{
    static readonly Lazy<WebApplicationFactory<Program>> Factory = new(() => new WebApplicationFactory<Program>()
        .WithWebHostBuilder(builder => builder.UseSetting("ConnectionStrings:App", TestRun.Database.ConnectionString))
        .WithTestScopes());

    [OneTimeTearDown]
    public static async Task StopTheApi()
    {
        if (Factory.IsValueCreated)
            await Factory.Value.DisposeAsync();
    }

    [TestCaseSource(typeof(Work), nameof(Work.Cases))]
    public async Task One_request(int test)
    {
        using var client = Factory.Value.CreateClient(Scope);
        await using (var db = new AppDb(Scope.Options))
            await db.GetTable<Counter>().InsertAsync(() => new Counter { Name = $"test-{test}" });

        var names = await client.GetFromJsonAsync<string[]>("/counters");
        Assert.That(names, Is.EqualTo(new[] { $"test-{test}" }));
    }
}
