using System.Data.Common;
using LinqToDB.Data;
using Linq2DbTestKit.NUnit;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// The kit creates a uniquely named database per run and drops it at the end; it keeps it when asked, never drops a
/// database it did not create in this run, and writes into an existing database only when allowed.
/// </summary>
[CancelAfter(120_000)]
public abstract class DatabaseLifecycleSuite
{
    static DatabaseProvider Provider => TestRun.Database.Provider;

    static TestDatabaseOptions RunOptions => TestDatabaseOptions.FromEnvironment(Provider) with { ConnectionString = TestRun.Database.ServerConnectionString };

    static async Task<bool> ExistsAsync(string name)
    {
        await using var admin = Outside.OpenServer();
        return await Provider.DatabaseExistsAsync(admin, name, CancellationToken.None);
    }

    static async Task OnServerAsync(string sql)
    {
        await using var admin = Outside.OpenServer();
        await using var command = admin.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Drops a database behind the kit's back, as someone else on the server could.</summary>
    static async Task DropFromOutsideAsync(TestDatabase database)
    {
        Provider.ClearPool(database.ScopeConnectionString);
        Provider.ClearPool(database.ConnectionString);
        // A session just closed may still be on the server for a moment: the provider's own drop waits for it.
        await using var admin = Outside.OpenServer();
        await Provider.DropDatabaseAsync(admin, database.Name, CancellationToken.None);
    }

    [Test]
    [NonParallelizable]   // another test's database would be reported too
    public async Task A_database_a_test_creates_on_the_server_and_leaves_there_is_reported_by_the_leak_check()
    {
        await using var own = await OwnDatabase.CreateAsync("CREATE TABLE notes (id int NOT NULL PRIMARY KEY)");
        var left = $"left_{Guid.NewGuid():N}"[..20];
        await OnServerAsync($"CREATE DATABASE {left}");
        try
        {
            Assert.That(await own.Database.FindLeaksAsync(), Does.Contain($"database {left}: created on the server during the run and not dropped"));
        }
        finally
        {
            await using var admin = Outside.OpenServer();
            await Provider.DropDatabaseAsync(admin, left, CancellationToken.None);
        }

        Assert.That(await own.Database.FindLeaksAsync(), Is.Null, "dropped again, it is no leak");
    }

    [Test]
    public async Task Each_run_gets_a_database_of_its_own_that_is_dropped_at_the_end()
    {
        var first = await TestDatabase.CreateAsync(Provider, RunOptions);
        var second = await TestDatabase.CreateAsync(Provider, RunOptions);
        try
        {
            Assert.That(first.Name, Is.Not.EqualTo(second.Name).And.Not.EqualTo(TestRun.Database.Name));
            Assert.That(first.CreatedByKit, Is.True);
            Assert.That(await ExistsAsync(first.Name), Is.True);
        }
        finally
        {
            await first.DisposeAsync();
            await second.DisposeAsync();
        }

        Assert.That(await ExistsAsync(first.Name), Is.False);
        Assert.That(await ExistsAsync(second.Name), Is.False);
    }

    [Test]
    public async Task A_database_in_use_by_scopes_is_dropped_all_the_same()
    {
        var database = await TestDatabase.CreateAsync(Provider, RunOptions);
        var open = await database.BeginScopeAsync();
        _ = open.Db.Execute<int>("SELECT 1");

        await database.DisposeAsync();

        Assert.That(await ExistsAsync(database.Name), Is.False);
    }

    [Test]
    public async Task A_database_kept_on_request_outlives_the_run()
    {
        var database = await TestDatabase.CreateAsync(Provider, RunOptions with { KeepDatabase = true });
        try
        {
            await database.DisposeAsync();
            Assert.That(await ExistsAsync(database.Name), Is.True);
        }
        finally
        {
            await DropFromOutsideAsync(database);
        }
    }

    [Test]
    public async Task An_existing_database_runs_when_allowed_and_is_never_dropped()
    {
        var existing = await TestDatabase.CreateAsync(Provider, RunOptions with { KeepDatabase = true });
        try
        {
            var attached = await TestDatabase.CreateAsync(Provider, RunOptions with { ExistingDatabase = existing.Name, AllowExistingDatabase = true });
            Assert.That(attached.CreatedByKit, Is.False);
            await using (var scope = await attached.BeginScopeAsync())
                Assert.That(scope.Db.Execute<int>("SELECT 1"), Is.EqualTo(1));

            await attached.DisposeAsync();
            Assert.That(await ExistsAsync(existing.Name), Is.True, "the kit does not drop a database it did not create in this run");
        }
        finally
        {
            await DropFromOutsideAsync(existing);
        }
    }

    [Test]
    public async Task A_database_that_took_the_name_of_the_runs_database_is_not_dropped()
    {
        var database = await TestDatabase.CreateAsync(Provider, RunOptions);
        await DropFromOutsideAsync(database);
        await OnServerAsync($"CREATE DATABASE {database.Name}");
        try
        {
            var error = Assert.ThrowsAsync<TestKitConfigurationException>(async () => await database.DisposeAsync());

            Assert.That((await error)?.Message, Does.Contain("Refusing to drop").And.Contain(database.Name));
            Assert.That(await ExistsAsync(database.Name), Is.True);
        }
        finally
        {
            await OnServerAsync($"DROP DATABASE {database.Name}");
        }
    }
}
