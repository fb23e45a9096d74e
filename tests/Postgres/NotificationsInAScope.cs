using Linq2DbTestKit.Conformance;
using LinqToDB.Data;
using Npgsql;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.Postgres;

/// <summary>
/// NOTIFY and LISTEN take effect when a transaction commits, and a test's transaction never does: where production
/// would have delivered a notification, the test fails saying so, and names the real-commit test that delivers it.
/// </summary>
[CancelAfter(60_000)]
public sealed class NotificationsInAScope : ConformanceTest
{
    string Channel => $"ch_{Tag}";

    /// <summary>
    /// The payloads a listener outside the scope received, up to a notification it sent itself afterwards: PostgreSQL
    /// delivers in commit order, so what the scope sent would have come first.
    /// </summary>
    async Task<List<string>> HeardAsync(NpgsqlConnection listener, CancellationToken cancellationToken)
    {
        var heard = new List<string>();
        listener.Notification += (_, notification) => heard.Add(notification.Payload);
        await using (var control = new NpgsqlCommand($"NOTIFY {Channel}, 'control'", listener))
            await control.ExecuteNonQueryAsync(cancellationToken);
        while (!heard.Contains("control"))
            await listener.WaitAsync(cancellationToken);
        return heard;
    }

    async Task<NpgsqlConnection> ListenAsync(CancellationToken cancellationToken)
    {
        var listener = (NpgsqlConnection)Outside.Open();
        await using var listen = new NpgsqlCommand($"LISTEN {Channel}", listener);
        await listen.ExecuteNonQueryAsync(cancellationToken);
        return listener;
    }

    [Test]
    public async Task A_notify_outside_a_transaction_fails_the_test_naming_the_real_commit_test(CancellationToken cancellationToken)
    {
        await using var listener = await ListenAsync(cancellationToken);
        using (var db = NewShop())
            await db.ExecuteAsync($"NOTIFY {Channel}, 'from-the-scope'", cancellationToken);

        Assert.That(await HeardAsync(listener, cancellationToken), Is.EqualTo(new[] { "control" }), "no listener received the scope's notification");
        Assert.That(Scope.Divergences, Has.Count.EqualTo(1));
        Assert.That(Scope.Divergences[0], Does.Contain("ran NOTIFY outside a transaction of its own").And.Contain("no listener received it").And.Contain("[RealCommits]"));
        await EndScopeAndAssertDivergedAsync("[RealCommits]");
    }

    [Test]
    public async Task A_pg_notify_in_a_committed_transaction_fails_the_test_at_the_commit(CancellationToken cancellationToken)
    {
        await using var listener = await ListenAsync(cancellationToken);
        using (var db = NewShop())
        {
            await using var transaction = await db.BeginTransactionAsync(cancellationToken);
            await db.ExecuteAsync($"SELECT pg_notify('{Channel}', 'from-the-scope')", cancellationToken);
            Assert.That(Scope.Divergences, Is.Empty, "in production nothing is delivered before the commit either");
            await transaction.CommitAsync(cancellationToken);
        }

        Assert.That(await HeardAsync(listener, cancellationToken), Is.EqualTo(new[] { "control" }));
        Assert.That(Scope.Divergences, Has.Count.EqualTo(1));
        Assert.That(Scope.Divergences[0], Does.Contain("committed its transaction testkit_").And.Contain("pg_notify(…)").And.Contain("[RealCommits]"));
        await EndScopeAndAssertDivergedAsync("pg_notify");
    }

    [Test]
    public async Task A_notify_in_a_transaction_rolled_back_is_not_delivered_in_production_either(CancellationToken cancellationToken)
    {
        using (var db = NewShop())
        {
            await using (var transaction = await db.BeginTransactionAsync(cancellationToken))
            {
                await db.ExecuteAsync($"NOTIFY {Channel}, 'rolled-back'", cancellationToken);
                await transaction.RollbackAsync(cancellationToken);
            }

            await using (var transaction = await db.BeginTransactionAsync(cancellationToken))
            {
                await db.ExecuteAsync("SAVEPOINT before_notify", cancellationToken);
                await db.ExecuteAsync($"NOTIFY {Channel}, 'rolled-back-to-a-savepoint'", cancellationToken);
                await db.ExecuteAsync("ROLLBACK TO SAVEPOINT before_notify", cancellationToken);
                await transaction.CommitAsync(cancellationToken);
            }
        }

        Assert.That(Scope.Divergences, Is.Empty);
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task A_listen_outside_a_transaction_fails_the_test(CancellationToken cancellationToken)
    {
        await using (var connection = Scope.OpenConnection())
        await using (var listen = connection.CreateCommand())
        {
            listen.CommandText = $"LISTEN {Channel}";
            await listen.ExecuteNonQueryAsync(cancellationToken);
        }

        Assert.That(Scope.Divergences, Has.One.Contains("ran LISTEN outside a transaction of its own").And.One.Contains("did not change"));
        await EndScopeAndAssertDivergedAsync("[RealCommits]");
    }
}
