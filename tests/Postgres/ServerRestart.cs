using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.PostgreSql;
using LinqToDB.Data;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.Postgres;

/// <summary>
/// The server restarts under a running test: the scope that broke says so, and the next scope works — the pool does not
/// hand out the connections the restart killed. On a throwaway cluster of its own, so that no other test is touched.
/// </summary>
[CancelAfter(300_000)]
public sealed class ServerRestart
{
    LocalPostgreSqlServer _server = null!;

    Task RestartAsync() => _server.RestartAsync(CancellationToken.None);

    static async Task<int> SelectOneAsync(TestScope scope) => await scope.Db.ExecuteAsync<int>("SELECT 1");

    [Test]
    public async Task After_a_restart_the_scope_that_broke_says_so_and_the_next_scope_works()
    {
        var (binaries, searched) = LocalPostgreSqlServer.FindBinaries(Environment.GetEnvironmentVariable);
        if (binaries is null)
            Assert.Ignore($"needs PostgreSQL's server binaries to start a cluster of its own; initdb and pg_ctl are not in {searched}");
        _server = await LocalPostgreSqlServer.StartAsync(binaries, CancellationToken.None);

        try
        {
            var database = await TestDatabase.CreateAsync(PostgreSqlDatabaseProvider.Instance, new TestDatabaseOptions
            {
                ConnectionString = _server.ConnectionString,
                CheckForLeaks = false,
            });
            try
            {
                // Three pooled connections, idle when the server goes down.
                var warm = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => database.BeginScopeAsync()));
                foreach (var scope in warm)
                {
                    Assert.That(await SelectOneAsync(scope), Is.EqualTo(1));
                    await scope.DisposeAsync();
                }

                await using (var running = await database.BeginScopeAsync())
                {
                    Assert.That(await SelectOneAsync(running), Is.EqualTo(1));
                    await RestartAsync();

                    var error = Assert.ThrowsAsync<TestScopeException>(() => SelectOneAsync(running));
                    Assert.That((await error)?.Message, Does.Contain("was lost").And.Contain("the next test gets a fresh connection"));
                }

                for (var i = 0; i < 4; i++)
                {
                    await using var next = await database.BeginScopeAsync();
                    Assert.That(await SelectOneAsync(next), Is.EqualTo(1), "a scope after the broken one gets a live connection");
                }

                // A restart no scope noticed: the first scope to use a dead pooled connection breaks clearly, the next one works.
                await RestartAsync();
                await using (var first = await database.BeginScopeAsync())
                    Assert.That(async () => await SelectOneAsync(first), Throws.InstanceOf<TestScopeException>().With.Message.Contains("was lost"));
                await using (var second = await database.BeginScopeAsync())
                    Assert.That(await SelectOneAsync(second), Is.EqualTo(1));
            }
            finally
            {
                await database.DisposeAsync();
            }
        }
        finally
        {
            await _server.DisposeAsync();
        }
    }
}
