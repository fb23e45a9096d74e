using Linq2DbTestKit.NUnit;
using Npgsql;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.Postgres;

/// <summary>NOTIFY is delivered on commit, which a scope never does: a real-commit test receives it.</summary>
public sealed class RealCommitNotifications : DatabaseTest
{
    [Test]
    [RealCommits]
    [CancelAfter(60_000)]
    public async Task A_notify_committed_by_one_connection_reaches_a_listener_on_another(CancellationToken cancellationToken)
    {
        var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var listener = new NpgsqlConnection(TestRun.Database.ConnectionString);
        await listener.OpenAsync(cancellationToken);
        listener.Notification += (_, notification) => received.TrySetResult(notification.Payload);
        await using (var listen = new NpgsqlCommand("LISTEN colour_added", listener))
            await listen.ExecuteNonQueryAsync(cancellationToken);

        await using (var sender = new NpgsqlConnection(TestRun.Database.ConnectionString))
        {
            await sender.OpenAsync(cancellationToken);
            await using var transaction = await sender.BeginTransactionAsync(cancellationToken);
            await using (var insert = new NpgsqlCommand("INSERT INTO colours (name) VALUES ('indigo'); NOTIFY colour_added, 'indigo'", sender, transaction))
                await insert.ExecuteNonQueryAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        await listener.WaitAsync(cancellationToken);        // returns once a notification has arrived
        Assert.That(await received.Task, Is.EqualTo("indigo"));
    }
}
