using System.Data.Common;
using LinqToDB.Data;
using LinqToDB.Metrics;

namespace Linq2DbTestKit.Internal;

/// <summary>
/// One provider-specific bulk copy, as linq2db reports it to its metrics hook: it starts before the copy reaches the
/// driver and ends after, whether the copy succeeded or threw. Between the two, the copy holds the scope's connection.
/// </summary>
/// <remarks>
/// The copy's own error goes to the application, never through the kit: at the end, the scope asks the server whether
/// the copy aborted the transaction, so that what comes next behaves as after any failed statement.
/// </remarks>
internal sealed class BulkCopyActivity : IActivity
{
    static readonly AsyncLocal<BulkCopyActivity?> CurrentActivity = new();

    TestScopeConnection? _connection;
    DataConnection? _beganTransactionOf;
    int _ended;

    /// <summary>The bulk copy running in the calling flow, if it has not ended.</summary>
    public static BulkCopyActivity? Current => CurrentActivity.Value is { _ended: 0 } activity ? activity : null;

    public static IActivity Start()
    {
        var activity = new BulkCopyActivity();
        CurrentActivity.Value = activity;
        return activity;
    }

    /// <summary>The copy reached the driver on <paramref name="connection"/>: it takes the scope's connection, in a transaction the driver is handed.</summary>
    public DbConnection Begin(TestScopeConnection connection, DataConnection? context)
    {
        if (_connection is not null)
            return connection.Scope.Native;

        var scope = connection.Scope;
        if (scope.Database.Provider.BulkCopyNeedsTransaction && context is { Transaction: null })
        {
            context.BeginTransaction();
            _beganTransactionOf = context;
        }

        var native = scope.EnterBulkCopy(connection);
        _connection = connection;
        return native;
    }

    public IActivity AddTag(ActivityTagID key, object? value) => this;

    public IActivity AddQueryInfo(DataConnection? context, DbConnection? connection, DbCommand? command) => this;

    public void Dispose() => End(async: false).GetAwaiter().GetResult();

    public ValueTask DisposeAsync() => End(async: true);

    async ValueTask End(bool async)
    {
        if (Interlocked.Exchange(ref _ended, 1) != 0 || _connection is not { } connection)
            return;

        await connection.Scope.ExitBulkCopy(connection, async).ConfigureAwait(false);
        if (_beganTransactionOf is { Transaction: not null } context)
        {
            if (async)
                await context.CommitTransactionAsync().ConfigureAwait(false);
            else
                context.CommitTransaction();
        }
    }
}
