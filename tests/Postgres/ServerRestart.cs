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
    const int Port = 5439;

    static async Task RestartAsync()
    {
        var (restarted, messages) = await LocalPostgres.RunScriptAsync("restart", Port, CancellationToken.None);
        Assert.That(restarted, Is.True, messages);
    }

    static async Task<int> SelectOneAsync(TestScope scope) => await scope.Db.ExecuteAsync<int>("SELECT 1");

    [Test]
    public async Task After_a_restart_the_scope_that_broke_says_so_and_the_next_scope_works()
    {
        if (LocalPostgres.FindScript() is null)
            Assert.Ignore("needs this repository's scripts/local-postgres to start a PostgreSQL of its own");
        var (started, messages) = await LocalPostgres.RunScriptAsync("start", Port, CancellationToken.None);
        if (!started)
            Assert.Ignore($"could not start a PostgreSQL of its own on port {Port} (scripts/local-postgres needs the PostgreSQL server binaries): {messages}");

        try
        {
            var database = await TestDatabase.CreateAsync(PostgreSqlDatabaseProvider.Instance, new TestDatabaseOptions
            {
                ConnectionString = $"Host=127.0.0.1;Port={Port};Username=postgres;Password=postgres;Database=postgres",
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
            await LocalPostgres.RunScriptAsync("stop", Port, CancellationToken.None);
        }
    }
}
