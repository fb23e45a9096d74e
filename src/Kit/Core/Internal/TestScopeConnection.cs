using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;

namespace Linq2DbTestKit.Internal;

/// <summary>
/// What the application sees as its connection inside a test scope: a handle on the scope's one real connection.
/// Opening and closing it only attach and detach; its transactions are savepoints of the test's transaction; its
/// commands always run in that transaction.
/// </summary>
/// <remarks>
/// Like a real connection it holds at most one transaction at a time, and closing it rolls back that transaction.
/// Transactions of different handles nest, as the savepoints they are.
/// </remarks>
internal sealed class TestScopeConnection : DbConnection
{
    ConnectionState _state;
    int _interceptorAttached;
    string? _divergence;

    public TestScopeConnection(TestScope scope, string origin, bool tracedByLinqToDB, bool adoptedFromApplication = false, bool testsOwn = false)
    {
        Scope = scope;
        Origin = origin;
        TracedByLinqToDB = tracedByLinqToDB;
        AdoptedFromApplication = adoptedFromApplication;
        TestsOwn = testsOwn;
        // Component's finalizer has nothing to release: the scope owns the driver's connection.
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// Whether it is the connection of <see cref="TestScope.Db"/>, the test's own: a transaction the test holds on it
    /// around application code may undo what that code committed inside it, by the test's intent.
    /// </summary>
    public bool TestsOwn { get; }

    public TestScope Scope { get; }

    /// <summary>Who uses this handle, for the trace and for messages: "DataConnection #2", "connection #1".</summary>
    public string Origin { get; }

    /// <summary>Whether linq2db traces what runs on this handle; the kit traces raw ADO.NET handles itself.</summary>
    public bool TracedByLinqToDB { get; }

    /// <summary>
    /// Whether the kit took this handle's place in a context the application built itself, from a connection string or a
    /// configuration name (<see cref="ConnectionInterception"/>), rather than handing it out through the scope's options.
    /// </summary>
    public bool AdoptedFromApplication { get; }

    /// <summary>True the first time only: the context that opened this handle is to get the kit's unwrap interceptor.</summary>
    public bool MarkInterceptorAttached() => Interlocked.Exchange(ref _interceptorAttached, 1) == 0;

    /// <summary>Whether this handle's next use is to say how the scope diverged from production for it.</summary>
    public bool HasPendingDivergence => Volatile.Read(ref _divergence) is not null;

    /// <summary>Something happened to this handle that production would not do; its next use reports it, once.</summary>
    public void Diverged(string description) => Volatile.Write(ref _divergence, description);

    /// <summary>Reports a pending divergence, once: to the caller, and to the scope's list for the end of the test.</summary>
    public void ThrowIfDiverged(TestScope scope)
    {
        if (Interlocked.Exchange(ref _divergence, null) is { } description)
        {
            scope.RecordDivergence(description);
            throw new TestScopeException(description);
        }
    }

    /// <summary>The transaction begun on this handle, while it is active.</summary>
    public SavepointTransaction? Transaction { get; internal set; }

    [AllowNull]
    public override string ConnectionString
    {
        get => Scope.Native.ConnectionString;
        set => throw new NotSupportedException(
            "The connection string of a test scope's connection cannot be changed: the scope decides which database the test uses.");
    }

    public override string Database => Scope.Native.Database;

    public override string DataSource => Scope.Native.DataSource;

    public override string ServerVersion => Scope.Native.ServerVersion;

    public override int ConnectionTimeout => Scope.Native.ConnectionTimeout;

    public override ConnectionState State => _state;

    public override void ChangeDatabase(string databaseName) => throw new NotSupportedException(
        $"ChangeDatabase('{databaseName}') is not supported inside a test scope: the test's transaction belongs to database '{Scope.Native.Database}'.");

    public override void Open()
    {
        if (_state == ConnectionState.Open)
            throw new InvalidOperationException("The connection is already open.");
        Scope.ThrowIfEnded();
        _state = ConnectionState.Open;
    }

    public override void Close()
    {
        if (_state == ConnectionState.Closed)
            return;

        // Closing a connection rolls back its pending transaction, as ADO.NET drivers do.
        Transaction?.Dispose();
        _state = ConnectionState.Closed;
    }

    public override async Task CloseAsync()
    {
        if (_state == ConnectionState.Closed)
            return;

        if (Transaction is { } transaction)
            await transaction.DisposeAsync().ConfigureAwait(false);
        _state = ConnectionState.Closed;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            Close();
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await CloseAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }

    protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) =>
        Scope.BeginTransaction(this, isolationLevel, async: false, CancellationToken.None).GetAwaiter().GetResult();

    protected override async ValueTask<DbTransaction> BeginDbTransactionAsync(IsolationLevel isolationLevel, CancellationToken cancellationToken) =>
        await Scope.BeginTransaction(this, isolationLevel, async: true, cancellationToken).ConfigureAwait(false);

    protected override DbCommand CreateDbCommand() => new ScopeCommand(this, Scope.NewNativeCommand());

    public override void EnlistTransaction(System.Transactions.Transaction? transaction)
    {
        if (transaction is not null)
            throw Misuse.TransactionScope();
    }

    public override DataTable GetSchema() => Scope.Native.GetSchema();

    public override DataTable GetSchema(string collectionName) => Scope.Native.GetSchema(collectionName);

    public override DataTable GetSchema(string collectionName, string?[] restrictionValues) =>
        Scope.Native.GetSchema(collectionName, restrictionValues);

    internal void ThrowIfClosed()
    {
        if (_state != ConnectionState.Open)
            throw new InvalidOperationException($"The connection ({Origin}) is not open.");
    }

    public override string ToString() => $"{Origin} of {Scope}";
}
