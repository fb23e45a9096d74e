using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;

namespace Linq2DbTestKit.Internal;

/// <summary>
/// A command of a <see cref="TestScopeConnection"/>: the driver's own command underneath, always run in the test's
/// transaction (SqlClient refuses a command without it), one at a time on the scope's connection.
/// </summary>
internal sealed class ScopeCommand : DbCommand
{
    TestScopeConnection? _connection;

    public ScopeCommand(TestScopeConnection connection, DbCommand inner)
    {
        _connection = connection;
        Inner = inner;
        // Component's finalizer has nothing to release here; left registered, every statement's wrapper would wait for
        // the finalizer thread and survive a collection.
        GC.SuppressFinalize(this);
    }

    /// <summary>The driver's command. linq2db reaches it through the kit's unwrap interceptor.</summary>
    public DbCommand Inner { get; }

    internal TestScopeConnection Handle =>
        _connection ?? throw new InvalidOperationException("The command has no connection: set its Connection first.");

    [AllowNull]
    public override string CommandText
    {
        get => Inner.CommandText;
        set => Inner.CommandText = value;
    }

    public override int CommandTimeout
    {
        get => Inner.CommandTimeout;
        set => Inner.CommandTimeout = value;
    }

    public override CommandType CommandType
    {
        get => Inner.CommandType;
        set => Inner.CommandType = value;
    }

    public override bool DesignTimeVisible
    {
        get => Inner.DesignTimeVisible;
        set => Inner.DesignTimeVisible = value;
    }

    public override UpdateRowSource UpdatedRowSource
    {
        get => Inner.UpdatedRowSource;
        set => Inner.UpdatedRowSource = value;
    }

    protected override DbConnection? DbConnection
    {
        get => _connection;
        set => _connection = value switch
        {
            null => null,
            TestScopeConnection connection => connection,
            _ => throw new NotSupportedException(
                "A command of a test scope's connection cannot move to another connection: it would leave the test's transaction."),
        };
    }

    protected override DbParameterCollection DbParameterCollection => Inner.Parameters;

    /// <summary>
    /// Kept for the application to read back; the command runs in the test's transaction, whichever transaction is set here.
    /// </summary>
    protected override DbTransaction? DbTransaction { get; set; }

    public override void Cancel() => Inner.Cancel();

    /// <remarks>The driver keeps what it prepared with the session, so the scope's connection is closed at its end instead of pooled.</remarks>
    public override void Prepare()
    {
        Handle.Scope.KeepsDriverState();
        Handle.Scope.Execute(this, CommandBehavior.Default, async: false, Prepare, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <inheritdoc cref="Prepare()"/>
    public override Task PrepareAsync(CancellationToken cancellationToken = default)
    {
        Handle.Scope.KeepsDriverState();
        return Handle.Scope.Execute(this, CommandBehavior.Default, async: true, Prepare, cancellationToken).AsTask();
    }

    protected override DbParameter CreateDbParameter() => Inner.CreateParameter();

    public override int ExecuteNonQuery() =>
        Handle.Scope.Execute(this, CommandBehavior.Default, async: false, NonQuery, CancellationToken.None).GetAwaiter().GetResult();

    public override Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken) =>
        Handle.Scope.Execute(this, CommandBehavior.Default, async: true, NonQuery, cancellationToken).AsTask();

    public override object? ExecuteScalar() =>
        Handle.Scope.Execute(this, CommandBehavior.Default, async: false, Scalar, CancellationToken.None).GetAwaiter().GetResult();

    public override Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken) =>
        Handle.Scope.Execute(this, CommandBehavior.Default, async: true, Scalar, cancellationToken).AsTask();

    /// <remarks>
    /// The reader is the kit's (<see cref="ScopeDataReader"/>), over the driver's: when another connection of the scope
    /// needs the session while it is read, the rest of the result is read into memory. <see cref="CommandBehavior.CloseConnection"/>
    /// never reaches the driver, which would close the scope's connection: the reader closes the application's handle instead.
    /// </remarks>
    protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior) =>
        Handle.Scope.Execute(this, behavior, async: false, Reader, CancellationToken.None).GetAwaiter().GetResult();

    protected override Task<DbDataReader> ExecuteDbDataReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken) =>
        Handle.Scope.Execute(this, behavior, async: true, Reader, cancellationToken).AsTask();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            Inner.Dispose();
        base.Dispose(disposing);
    }

    static async ValueTask<int> NonQuery(DbCommand command, CommandBehavior behavior, bool async, CancellationToken cancellationToken) =>
        async ? await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteNonQuery();

    static async ValueTask<object?> Scalar(DbCommand command, CommandBehavior behavior, bool async, CancellationToken cancellationToken) =>
        async ? await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteScalar();

    static async ValueTask<DbDataReader> Reader(DbCommand command, CommandBehavior behavior, bool async, CancellationToken cancellationToken)
    {
        var driverBehavior = behavior & ~CommandBehavior.CloseConnection;
        return async ? await command.ExecuteReaderAsync(driverBehavior, cancellationToken).ConfigureAwait(false) : command.ExecuteReader(driverBehavior);
    }

    static async ValueTask<bool> Prepare(DbCommand command, CommandBehavior behavior, bool async, CancellationToken cancellationToken)
    {
        if (async)
            await command.PrepareAsync(cancellationToken).ConfigureAwait(false);
        else
            command.Prepare();
        return true;
    }
}
